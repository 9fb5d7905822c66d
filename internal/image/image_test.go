package image

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// program writes an executable file and returns its absolute path.
func program(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

const digest = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestLookupNormalisesAsContainerTools(t *testing.T) {
	dir := t.TempDir()
	api, web, old, pinned := program(t, dir, "api"), program(t, dir, "web"), program(t, dir, "old"), program(t, dir, "pinned")
	tab, err := NewTable([]string{
		"ghcr.io/acme/api=" + api + ` --port 8080 --name "two words"`,
		"nginx=" + web,
		"acme/old:1.0=" + old,
		"acme/pinned@" + digest + "=" + pinned,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Builtin("gracelab/upstream", Program{Path: "/builtin/upstream"}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Builtin("nginx:1.27", Program{Path: "/builtin/nginx"}); err != nil {
		t.Fatal(err)
	}
	for img, want := range map[string]string{
		"ghcr.io/acme/api":             "api",
		"ghcr.io/acme/api:v2":          "api",
		"ghcr.io/acme/api@" + digest:   "api",
		"nginx":                        "web",
		"docker.io/library/nginx:1.27": "web", // --run for the repository wins over a built-in for the tag
		"library/nginx:latest":         "web",
		"acme/old:1.0":                 "old",
		"docker.io/acme/old:1.0":       "old",
		"acme/old:2.0":                 "",
		"acme/old":                     "", // :latest
		"acme/pinned@" + digest:        "pinned",
		"acme/pinned:3@" + digest:      "pinned",
		"acme/pinned:3":                "",
		"gracelab/upstream:v1":         "upstream",
		"docker.io/gracelab/upstream":  "upstream",
		"acme/api":                     "", // docker.io/acme/api is another repository
		"Not A Valid Reference":        "",
	} {
		p, ok := tab.Lookup(img)
		if got := filepath.Base(p.Path); (ok && got != want) || (!ok && want != "") {
			t.Errorf("Lookup(%q) = %q %v, want %q", img, p.Path, ok, want)
		}
	}
	p, _ := tab.Lookup("ghcr.io/acme/api:1")
	if want := []string{"--port", "8080", "--name", "two words"}; !reflect.DeepEqual(p.Args, want) {
		t.Errorf("args %q, want %q", p.Args, want)
	}

	err = tab.Check([]Use{{"acme/old:2.0", "Deployment old"}, {"nginx", "Deployment web"}, {"redis:7", "Deployment cache"}, {"redis:7", "Deployment cache2"}})
	if err == nil || err.Error() != "no program for image acme/old:2.0 (Deployment old), redis:7 (Deployment cache): map each with --run IMAGE=PROGRAM [ARGS]" {
		t.Fatalf("Check: %v", err)
	}
	if err := tab.Check([]Use{{"nginx:2", "Deployment web"}}); err != nil {
		t.Fatal(err)
	}
}

func TestArgvAsKubernetesComposesIt(t *testing.T) {
	dir := t.TempDir()
	api := program(t, dir, "bin/api")
	server := program(t, dir, "build/app/server")
	tab, err := NewTable([]string{"acme/api=" + api + " serve --port=80"}, []string{"/srv/api=" + server, "/app=" + filepath.Join(dir, "build/app")})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := lookProgram("sh")
	if err != nil {
		t.Skip("no sh on this machine")
	}
	for _, tc := range []struct {
		name          string
		command, args []string
		want          []string
		err           string
	}{
		{"image defaults", nil, nil, []string{api, "serve", "--port=80"}, ""},
		{"args replace CMD", nil, []string{"--port=9090"}, []string{api, "--port=9090"}, ""},
		{"mapped file", []string{"/srv/api", "-v"}, []string{"x"}, []string{server, "-v", "x"}, ""},
		{"mapped directory", []string{"/app/server"}, nil, []string{server}, ""},
		{"shell on this machine", []string{"sh", "-c", "exec $0"}, nil, []string{sh, "-c", "exec $0"}, ""},
		{"absolute program on this machine", []string{"/bin/sh"}, nil, []string{"/bin/sh"}, ""},
		{"path only in the image", []string{"/usr/local/bin/api"}, nil, nil, `image acme/api:1: command "/usr/local/bin/api": is a path inside the image and not on this machine: map it with --path /usr/local/bin/api=LOCAL_PATH`},
		{"relative path", []string{"./api"}, nil, nil, "map it with --path ./api=LOCAL_PATH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tab.Argv("acme/api:1", tc.command, tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Argv = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := tab.Argv("other/img", nil, nil); err == nil || !strings.Contains(err.Error(), "--run other/img=PROGRAM") {
		t.Fatalf("unmapped: %v", err)
	}
}

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	api := program(t, dir, "api")
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		runs, paths []string
		want        string
	}{
		{[]string{"acme/api"}, nil, `--run "acme/api": want IMAGE=PROGRAM [ARGS]`},
		{[]string{"acme/api="}, nil, "no PROGRAM after '='"},
		{[]string{"acme/api=" + api + ` "unclosed`}, nil, "--run"},
		{[]string{"acme/api=" + dir + "/missing"}, nil, "--run acme/api: program \"" + dir + "/missing\": no such file or directory"},
		{[]string{"acme/api=" + notExec}, nil, "permission denied"},
		{[]string{"acme/api=no-such-program-here"}, nil, `program "no-such-program-here" not found in PATH`},
		{[]string{"Acme/API=" + api}, nil, "must be lowercase"},
		{[]string{"acme/api=" + api, "docker.io/acme/api=" + api}, nil, "image given twice"},
		{nil, []string{"/app"}, "want CONTAINER_PATH=LOCAL_PATH"},
		{nil, []string{"app=" + api}, "must be absolute"},
		{nil, []string{"/app=" + dir + "/missing"}, "does not exist"},
	} {
		_, err := NewTable(tc.runs, tc.paths)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("NewTable(%q, %q): %v, want %q", tc.runs, tc.paths, err, tc.want)
		}
	}
}
