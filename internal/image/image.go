// Package image maps container images to programs on this machine: `--run IMAGE=PROGRAM
// [ARGS]` (PROGRAM plays the image's ENTRYPOINT, ARGS its CMD) and `--path
// CONTAINER_PATH=LOCAL_PATH` for commands a manifest names inside the image. Image names are
// normalised as container tools do (nginx = docker.io/library/nginx:latest).
package image

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/shlex"
)

// Program is what runs for an image: Path plays the ENTRYPOINT, Args the CMD.
type Program struct {
	Path string
	Args []string
}

// Mapping is one image (or every tag of a repository) and its program.
type Mapping struct {
	Image   string // as given
	Program Program
	named   reference.Named
	anyTag  bool // given without tag or digest: matches every tag and digest
	builtin bool
}

// ParseRun parses one --run value, "IMAGE=PROGRAM [ARGS]": ARGS are split into words as a
// shell would (quotes, backslashes), without running a shell. PROGRAM is looked up as a shell
// would (a name without '/' in PATH) and must be an executable file.
func ParseRun(value string) (Mapping, error) {
	img, cmdline, ok := strings.Cut(value, "=")
	if !ok || strings.TrimSpace(img) == "" {
		return Mapping{}, fmt.Errorf("--run %q: want IMAGE=PROGRAM [ARGS]", value)
	}
	words, err := shlex.Split(cmdline)
	if err != nil {
		return Mapping{}, fmt.Errorf("--run %q: %v", value, err)
	}
	if len(words) == 0 {
		return Mapping{}, fmt.Errorf("--run %q: no PROGRAM after '='", value)
	}
	prog, err := lookProgram(words[0])
	if err != nil {
		return Mapping{}, fmt.Errorf("--run %s: %v", img, err)
	}
	m, err := newMapping(strings.TrimSpace(img), Program{Path: prog, Args: words[1:]})
	if err != nil {
		return Mapping{}, fmt.Errorf("--run %s: %v", img, err)
	}
	return m, nil
}

func newMapping(img string, p Program) (Mapping, error) {
	named, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		return Mapping{}, fmt.Errorf("image %q: %v", img, err)
	}
	_, tagged := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	return Mapping{Image: img, Program: p, named: named, anyTag: !tagged && !digested}, nil
}

// lookProgram finds an executable as exec.LookPath does and makes it absolute, so that it
// runs whatever directory a pod starts in.
func lookProgram(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) && !strings.Contains(name, "/") {
			return "", fmt.Errorf("program %q not found in PATH", name)
		}
		var ee *exec.Error
		if errors.As(err, &ee) {
			err = ee.Err
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("program %q: %v", name, err)
	}
	return filepath.Abs(p)
}

// Table is every image mapping of a run: --run values, built-in programs (the demo's
// services) and --path entries.
type Table struct {
	mappings []Mapping
	paths    map[string]string // container path -> local path
}

// NewTable parses --run and --path values. Errors are one line naming the flag.
func NewTable(runs, paths []string) (*Table, error) {
	t := &Table{paths: map[string]string{}}
	for _, r := range runs {
		m, err := ParseRun(r)
		if err != nil {
			return nil, err
		}
		for _, prev := range t.mappings {
			if prev.named.String() == m.named.String() {
				return nil, fmt.Errorf("--run %s: image given twice (also as %s)", m.Image, prev.Image)
			}
		}
		t.mappings = append(t.mappings, m)
	}
	for _, p := range paths {
		cpath, local, ok := strings.Cut(p, "=")
		if !ok || cpath == "" || local == "" {
			return nil, fmt.Errorf("--path %q: want CONTAINER_PATH=LOCAL_PATH", p)
		}
		if !path.IsAbs(cpath) {
			return nil, fmt.Errorf("--path %q: the container path must be absolute", p)
		}
		abs, err := filepath.Abs(local)
		if err != nil {
			return nil, fmt.Errorf("--path %q: %v", p, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("--path %q: %s does not exist", p, local)
		}
		cpath = path.Clean(cpath)
		if _, dup := t.paths[cpath]; dup {
			return nil, fmt.Errorf("--path %s: given twice", cpath)
		}
		t.paths[cpath] = abs
	}
	return t, nil
}

// Builtin registers a program the binary provides for an image (the demo's services); a --run
// for the same image wins.
func (t *Table) Builtin(img string, p Program) error {
	m, err := newMapping(img, p)
	if err != nil {
		return err
	}
	m.builtin = true
	t.mappings = append(t.mappings, m)
	return nil
}

// Lookup finds the program for an image as a manifest names it: a mapping with the exact
// reference (tag or digest, an untagged name meaning :latest) wins over one for the
// repository; --run wins over a built-in.
func (t *Table) Lookup(img string) (Program, bool) {
	named, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		return Program{}, false
	}
	full := reference.TagNameOnly(named)
	best, rank := Program{}, 0
	for _, m := range t.mappings {
		r := 0
		switch {
		case m.named.Name() != full.Name():
			continue
		case m.anyTag:
			r = 1
		case sameTagOrDigest(m.named, full):
			r = 3
		default:
			continue
		}
		if !m.builtin {
			r += 4
		}
		if r > rank {
			best, rank = m.Program, r
		}
	}
	return best, rank > 0
}

func sameTagOrDigest(m, img reference.Named) bool {
	if md, ok := m.(reference.Digested); ok {
		id, ok := img.(reference.Digested)
		return ok && id.Digest() == md.Digest()
	}
	mt, _ := m.(reference.Tagged)
	it, ok := img.(reference.Tagged)
	return mt != nil && ok && it.Tag() == mt.Tag()
}

// Use is one container's image, for Check's message.
type Use struct {
	Image  string
	Object string // "Deployment api, container app"
}

// Check lists every image without a program in one error, with the flag that fixes it.
func (t *Table) Check(uses []Use) error {
	var missing []string
	seen := map[string]bool{}
	for _, u := range uses {
		if _, ok := t.Lookup(u.Image); ok || seen[u.Image] {
			continue
		}
		seen[u.Image] = true
		missing = append(missing, fmt.Sprintf("%s (%s)", u.Image, u.Object))
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return fmt.Errorf("no program for image %s: map each with --run IMAGE=PROGRAM [ARGS]", strings.Join(missing, ", "))
}

// Argv is the command line of a container as Kubernetes composes it from the image and the
// manifest, command and args already $(VAR)-expanded: no command means the image's
// ENTRYPOINT (the mapped program) with args, or its CMD (the mapped ARGS) when args are
// empty too; a command replaces both, and its first element, a path inside the image, is
// resolved through --path, or used as is when it exists on this machine (shells, system
// programs); otherwise the error names --path.
func (t *Table) Argv(img string, command, args []string) ([]string, error) {
	p, ok := t.Lookup(img)
	if !ok {
		return nil, fmt.Errorf("no program for image %s: map it with --run %s=PROGRAM [ARGS]", img, img)
	}
	if len(command) == 0 {
		if len(args) == 0 {
			args = p.Args
		}
		return append([]string{p.Path}, args...), nil
	}
	prog, err := t.resolve(command[0])
	if err != nil {
		return nil, fmt.Errorf("image %s: command %q: %v", img, command[0], err)
	}
	return append(append([]string{prog}, command[1:]...), args...), nil
}

// resolve turns the first element of a manifest command into a program on this machine.
func (t *Table) resolve(cmd string) (string, error) {
	if path.IsAbs(cmd) {
		clean := path.Clean(cmd)
		if local, ok := t.paths[clean]; ok {
			return local, nil
		}
		// The longest mapped directory that contains the path.
		best := ""
		for cp := range t.paths {
			if strings.HasPrefix(clean, strings.TrimSuffix(cp, "/")+"/") && len(cp) > len(best) {
				best = cp
			}
		}
		if best != "" {
			return filepath.Join(t.paths[best], filepath.FromSlash(strings.TrimPrefix(clean, best))), nil
		}
	}
	if p, err := lookProgram(cmd); err == nil && (path.IsAbs(cmd) || !strings.Contains(cmd, "/")) {
		return p, nil
	}
	return "", fmt.Errorf("is a path inside the image and not on this machine: map it with --path %s=LOCAL_PATH, or drop command from the manifest so that --run's program runs", cmd)
}
