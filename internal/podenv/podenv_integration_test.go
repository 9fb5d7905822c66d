package podenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gracelab/gracelab/internal/image"
)

// TestIntegrationProgramSeesTheEnvironment runs a real program the way the drill starts a
// container: environment from podenv, command line from image, output through the redactor.
func TestIntegrationProgramSeesTheEnvironment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	prog := filepath.Join(dir, "api")
	script := "#!" + sh + "\n" + `printf 'argv=%s|' "$@"; echo; echo "greeting=$GREETING pod=$POD_NAME ip=$POD_IP token=$DB_TOKEN"` + "\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	objs, dep := decoded(t, strings.Replace(strings.Replace(objects,
		`command: ["/bin/api", "--listen=$(POD_IP):$(PORT)", "$$(POD_IP)", "$(UNSET)"]`, `command: ["/app/api", "--listen=$(POD_IP):$(PORT)", "$$(POD_IP)"]`, 1),
		"image: acme/api:1", "image: docker.io/acme/api:1", 1))
	spec := &dep.Spec.Template.Spec
	c := &spec.Containers[0]
	src := NewSources(objs...)
	env, err := Resolve(pod, spec, c, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := image.NewTable([]string{"acme/api=" + prog + " --default-cmd"}, []string{"/app=" + dir})
	if err != nil {
		t.Fatal(err)
	}
	command, args := ExpandCommand(c, env)
	argv, err := tab.Argv(c.Image, command, args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env.Environ()
	var out bytes.Buffer
	w := NewRedactor(src.SecretValues()...).Writer(&out)
	cmd.Stdout = w
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := "argv=--listen=127.0.0.5:8080|argv=$(POD_IP)|argv=--greeting=hello|argv=--token=$(TOKEN)|\n" +
		"greeting=hello pod=api-7d9f-x2x ip=127.0.0.5 token=<redacted>\n"
	if out.String() != want {
		t.Fatalf("program printed\n%s\nwant\n%s", out.String(), want)
	}
}
