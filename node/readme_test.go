package node_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The example leaves nothing behind in the temporary directory.
func TestExampleCleansUp(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	stdout := os.Stdout
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = devnull // the example prints its output
	Example()
	os.Stdout = stdout
	devnull.Close()
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Fatalf("the example left %v in the temporary directory", names)
	}
}

// The README's "Embed it" snippet compiles as written: the test takes the
// first go block after the heading and builds it as a program of this
// module (through an overlay: nothing is written into the tree).
func TestREADMESnippetCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program (about 10 s on a cold cache); skipped with -short")
	}
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "## Embed it")
	if i < 0 {
		t.Fatal(`README.md has no "## Embed it" section`)
	}
	start := strings.Index(text[i:], "```go\n")
	if start < 0 {
		t.Fatal(`the "Embed it" section has no go block`)
	}
	code := text[i+start+len("```go\n"):]
	end := strings.Index(code, "```")
	if end < 0 {
		t.Fatal("the go block does not end")
	}
	code = code[:end]
	if !strings.HasPrefix(code, "package main") {
		t.Fatalf("the snippet is not a whole program (it starts %q)", code[:min(len(code), 40)])
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "main.go")
	if err := os.WriteFile(src, []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	// A package directory that does not exist in the tree, filled by the
	// overlay.
	virtual := filepath.Join(root, "internal", "readmesnippet", "main.go")
	overlay := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(overlay, []byte(`{"Replace": {`+quote(virtual)+`: `+quote(src)+`}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-overlay", overlay, "-o", filepath.Join(tmp, "snippet"), "./internal/readmesnippet")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's snippet does not compile: %v\n%s\n----\n%s", err, out, code)
	}
}

func quote(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}
