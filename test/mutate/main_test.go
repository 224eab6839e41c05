package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The parser reads blocks of text exactly, and refuses a list it cannot
// read rather than running part of it.
func TestParse(t *testing.T) {
	const list = `# comment
=== one
file: a/b.go
why: a bug
--- old
	if x {
		y()
	}
+++ new
	if !x {
		y()
	}

# a comment between mutants
=== two
file: c.go
why: another
equivalent: nobody can tell
--- old
a
+++ new

# the end
`
	ms, err := parse(strings.NewReader(list), "list")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("parsed %d mutants, want 2", len(ms))
	}
	if want := "\tif x {\n\t\ty()\n\t}"; ms[0].Old != want {
		t.Errorf("old text %q, want %q", ms[0].Old, want)
	}
	if want := "\tif !x {\n\t\ty()\n\t}"; ms[0].New != want {
		t.Errorf("new text %q, want %q (without the blank line before the next block)", ms[0].New, want)
	}
	if ms[1].Equivalent != "nobody can tell" || ms[1].Old != "a" || ms[1].New != "" {
		t.Errorf("second mutant %+v", ms[1])
	}
	for _, bad := range []string{
		"=== x\nwhy: w\n--- old\na\n+++ new\nb\n",                                  // no file
		"=== x\nfile: f\n--- old\na\n+++ new\nb\n",                                 // no why
		"=== x\nfile: f\nwhy: w\n+++ new\nb\n",                                     // no old text
		"=== x\nfile: f\nwhy: w\n--- old\na\n+++ new\na\n",                         // no change
		"=== x\nfile: f\nwhy: w\n--- old\na\n=== x\nfile: f\nwhy: w\n--- old\nb\n", // named twice
		"stray line\n",
	} {
		if _, err := parse(strings.NewReader(bad), "bad"); err == nil {
			t.Errorf("parsed %q without an error", bad)
		}
	}
}

// verify reports a mutant whose text is missing or occurs twice.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.go"), []byte("a\nb\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ms := []Mutant{
		{Name: "ok", File: "f.go", Old: "a"},
		{Name: "twice", File: "f.go", Old: "b"},
		{Name: "missing", File: "f.go", Old: "c"},
		{Name: "nofile", File: "g.go", Old: "a"},
	}
	problems := verify(dir, ms)
	if len(problems) != 3 {
		t.Fatalf("%d problems, want 3 (twice, missing, nofile): %q", len(problems), problems)
	}
	for i, name := range []string{"twice", "missing", "nofile"} {
		if !strings.Contains(problems[i], name) {
			t.Errorf("problem %d is %q, want it to name %s", i, problems[i], name)
		}
	}
}

// The mutant list of the repository reads.
func TestListParses(t *testing.T) {
	ms, err := parseFile("mutants.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 30 {
		t.Errorf("%d mutants; the list should hold at least 30", len(ms))
	}
}
