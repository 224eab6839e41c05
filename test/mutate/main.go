// Command mutate is syncnode's mutation testing: it seeds plausible bugs
// ("mutants") into node/engine, hlc, store/mem.go and store/badgerstore, one
// at a time, runs the judges (the package's unit tests, the scenario tests and
// the simulation's seeds) against each, and reports which mutants the judges
// killed and which survived. A judge that lets a real bug through survives a
// mutant; the goal is none surviving but the equivalent ones, each explained
// in the list.
//
// The mutants live in mutants.txt beside this file, each an exact piece of
// text of one file and its replacement, so that the list stays reviewable.
// Before running anything the tool checks that every mutant's text occurs
// exactly once in its file, and fails loudly, naming the mutant, if not (the
// code moved on: fix the mutant). It works on a copy of the repository in a
// temporary directory, so the working tree is never touched.
//
// Usage, from the repository (it takes tens of minutes; not part of CI):
//
//	go run ./test/mutate                      # every mutant, CI's 2,000 seeds
//	go run ./test/mutate -check               # only check that every mutant applies
//	go run ./test/mutate -run 'lww|prune' -v  # some mutants, with the killing output
//	go run ./test/mutate -seeds 500 -report /tmp/mutants.md
//
// The exit status is 0 when every mutant was killed or is marked
// equivalent, 1 when one survived, 2 when the list does not apply.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Mutant is one seeded bug.
type Mutant struct {
	Name string
	File string // relative to the repository root
	// Why says what bug a developer would have made.
	Why string
	// Equivalent, if not empty, explains why no judge can kill the mutant
	// (it changes no behaviour a judge can see).
	Equivalent string
	Old, New   string
	Line       int // of "=== name" in the list, for messages
}

// Judge is one command that must pass on correct code.
type Judge struct {
	Name string
	Args []string // go test arguments
}

func main() {
	var (
		listPath = flag.String("mutants", "", "the mutant list (default test/mutate/mutants.txt of the repository)")
		run      = flag.String("run", "", "only the mutants whose name matches this regular expression")
		seeds    = flag.Int("seeds", 2000, "random seeds of TestSimSeeds per mutant (CI runs 2,000)")
		badger   = flag.Int("badger", 24, "random seeds of TestSimBadger per mutant, for the stores' mutants")
		fields   = flag.Int("fields", 150, "random seeds of TestSimFields per mutant, for the engine's mutants")
		timeout  = flag.Duration("timeout", 15*time.Minute, "time limit of one judge (a mutant that hangs is killed by it)")
		check    = flag.Bool("check", false, "only check that every mutant applies, run nothing")
		verbose  = flag.Bool("v", false, "print the output of the judge that killed each mutant")
		report   = flag.String("report", "", "also write the results as a Markdown table to this file")
		keep     = flag.Bool("keep", false, "keep the copy of the repository the mutants ran in")
	)
	flag.Parse()
	root, err := repoRoot()
	if err != nil {
		fatal(2, "finding the repository: %v", err)
	}
	if *listPath == "" {
		*listPath = filepath.Join(root, "test", "mutate", "mutants.txt")
	}
	mutants, err := parseFile(*listPath)
	if err != nil {
		fatal(2, "%v", err)
	}
	if problems := verify(root, mutants); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, p)
		}
		fatal(2, "%d of %d mutants do not apply to the source: fix them in %s", len(problems), len(mutants), *listPath)
	}
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			fatal(2, "-run: %v", err)
		}
		var keepList []Mutant
		for _, m := range mutants {
			if re.MatchString(m.Name) {
				keepList = append(keepList, m)
			}
		}
		mutants = keepList
	}
	fmt.Printf("%d mutants apply\n", len(mutants))
	if *check {
		return
	}
	work, err := os.MkdirTemp("", "syncnode-mutate-")
	if err != nil {
		fatal(2, "%v", err)
	}
	if !*keep {
		defer os.RemoveAll(work)
	}
	if err := copyRepo(root, work); err != nil {
		fatal(2, "copying the repository: %v", err)
	}
	fmt.Printf("working in %s\n", work)
	cfg := judgeConfig{seeds: *seeds, badger: *badger, fields: *fields, timeout: *timeout}
	// The judges must pass on the code as it is, or every mutant is
	// "killed" for nothing.
	fmt.Println("judging the unmutated code first")
	for _, j := range cfg.all() {
		if out, err := runJudge(work, j, cfg.timeout); err != nil {
			fmt.Fprintf(os.Stderr, "%s\n", out)
			fatal(2, "judge %s fails on the unmutated code: %v", j.Name, err)
		}
	}
	var results []result
	start := time.Now()
	for i, m := range mutants {
		r := runMutant(work, m, cfg, *verbose)
		results = append(results, r)
		fmt.Printf("[%d/%d] %-34s %-10s %s\n", i+1, len(mutants), m.Name, r.status, r.detail)
	}
	killed, equivalent, survived := 0, 0, 0
	for _, r := range results {
		switch r.status {
		case "killed":
			killed++
		case "equivalent":
			equivalent++
		default:
			survived++
		}
	}
	fmt.Printf("\n%d mutants in %v: %d killed, %d equivalent, %d survived; score %d/%d non-equivalent killed\n",
		len(results), time.Since(start).Round(time.Second), killed, equivalent, survived, killed, killed+survived)
	if *report != "" {
		if err := writeReport(*report, results); err != nil {
			fatal(2, "writing the report: %v", err)
		}
	}
	if survived > 0 {
		os.Exit(1)
	}
}

func fatal(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mutate: "+format+"\n", args...)
	os.Exit(code)
}

// repoRoot returns the directory of go.mod, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above")
		}
		dir = parent
	}
}

// parseFile reads a mutant list. Its format, line by line:
//
//	# a comment (outside a block of text)
//	=== name
//	file: path/relative/to/the/root.go
//	why: the bug a developer would make (one line)
//	equivalent: why no judge can see it (one line; only for such mutants)
//	--- old
//	exact text of the file, as many lines as needed
//	+++ new
//	its replacement, as many lines as needed
//
// The old and new texts run up to the next marker line ("+++ new", "=== ",
// a comment line starting with #, or the end); blank lines at their end and
// their last newline are not part of them.
func parseFile(path string) ([]Mutant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parse(f, path)
}

func parse(r io.Reader, name string) ([]Mutant, error) {
	var (
		out   []Mutant
		cur   *Mutant
		block string // "", "old" or "new"
		text  []string
		sc    = bufio.NewScanner(r)
		n     = 0
		seen  = make(map[string]int)
	)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	endBlock := func() {
		if cur == nil {
			return
		}
		for len(text) > 0 && strings.TrimSpace(text[len(text)-1]) == "" {
			text = text[:len(text)-1] // blank lines between blocks
		}
		switch block {
		case "old":
			cur.Old = strings.Join(text, "\n")
		case "new":
			cur.New = strings.Join(text, "\n")
		}
		block, text = "", nil
	}
	finish := func() error {
		endBlock()
		if cur == nil {
			return nil
		}
		switch {
		case cur.File == "":
			return fmt.Errorf("%s:%d: mutant %s has no file", name, cur.Line, cur.Name)
		case cur.Why == "":
			return fmt.Errorf("%s:%d: mutant %s has no why", name, cur.Line, cur.Name)
		case cur.Old == "":
			return fmt.Errorf("%s:%d: mutant %s has no old text", name, cur.Line, cur.Name)
		case cur.Old == cur.New:
			return fmt.Errorf("%s:%d: mutant %s changes nothing", name, cur.Line, cur.Name)
		}
		out = append(out, *cur)
		cur = nil
		return nil
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		if block != "" && strings.HasPrefix(line, "#") {
			endBlock() // a comment of the list ends a block (Go lines never start with #)
		}
		switch {
		case strings.HasPrefix(line, "=== "):
			if err := finish(); err != nil {
				return nil, err
			}
			nm := strings.TrimSpace(strings.TrimPrefix(line, "=== "))
			if prev, dup := seen[nm]; dup {
				return nil, fmt.Errorf("%s:%d: mutant %s named twice (first at line %d)", name, n, nm, prev)
			}
			seen[nm] = n
			cur = &Mutant{Name: nm, Line: n}
		case line == "--- old" && cur != nil:
			endBlock()
			block = "old"
		case line == "+++ new" && cur != nil:
			endBlock()
			block = "new"
		case block != "":
			text = append(text, line)
		case strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "":
		case cur != nil && strings.HasPrefix(line, "file:"):
			cur.File = strings.TrimSpace(strings.TrimPrefix(line, "file:"))
		case cur != nil && strings.HasPrefix(line, "why:"):
			cur.Why = strings.TrimSpace(strings.TrimPrefix(line, "why:"))
		case cur != nil && strings.HasPrefix(line, "equivalent:"):
			cur.Equivalent = strings.TrimSpace(strings.TrimPrefix(line, "equivalent:"))
		default:
			return nil, fmt.Errorf("%s:%d: cannot read %q", name, n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := finish(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no mutants", name)
	}
	return out, nil
}

// verify returns a line per mutant whose old text does not occur exactly
// once in its file.
func verify(root string, ms []Mutant) []string {
	var problems []string
	for _, m := range ms {
		src, err := os.ReadFile(filepath.Join(root, m.File))
		if err != nil {
			problems = append(problems, fmt.Sprintf("mutant %s (line %d): %v", m.Name, m.Line, err))
			continue
		}
		if c := bytes.Count(src, []byte(m.Old)); c != 1 {
			problems = append(problems, fmt.Sprintf("mutant %s (line %d): its old text occurs %d times in %s, want exactly once:\n%s", m.Name, m.Line, c, m.File, indent(m.Old)))
		}
	}
	return problems
}

func indent(s string) string {
	return "\t" + strings.ReplaceAll(s, "\n", "\n\t")
}

// copyRepo copies the files git knows of (tracked, or new and not ignored)
// from root to dst.
func copyRepo(root, dst string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" {
			continue
		}
		src := filepath.Join(root, rel)
		info, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, b, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// judgeConfig says how hard the judges judge.
type judgeConfig struct {
	seeds, badger, fields int
	timeout               time.Duration
}

// scenarios are the simulation's scripted tests and regression seeds.
var scenarios = Judge{"sim scenarios", []string{"./test/sim/", "-run", "TestScenario|TestSimRegressions|TestCatchUp"}}

func (c judgeConfig) seedsJudge() Judge {
	return Judge{"sim seeds", []string{"./test/sim/", "-run", "TestSimSeeds$", "-sim.seeds=" + strconv.Itoa(c.seeds)}}
}

// fieldsJudge runs the shared-fields workload's seeds (CI runs 150).
func (c judgeConfig) fieldsJudge() Judge {
	return Judge{"sim fields", []string{"./test/sim/", "-run", "TestSimFields$", "-sim.fields=" + strconv.Itoa(c.fields)}}
}

func (c judgeConfig) badgerJudge() Judge {
	return Judge{"sim on Badger", []string{"./test/sim/", "-run", "TestSimBadger$", "-sim.badger=" + strconv.Itoa(c.badger)}}
}

// judges returns the judges of a mutated file, cheapest first.
func (c judgeConfig) judges(file string) []Judge {
	unit := func(pkg string) Judge { return Judge{pkg + " tests", []string{"./" + pkg + "/"}} }
	switch {
	case strings.HasPrefix(file, "node/engine/"):
		return []Judge{unit("node/engine"), scenarios, c.fieldsJudge(), c.seedsJudge(), c.badgerJudge()}
	case strings.HasPrefix(file, "hlc/"):
		return []Judge{unit("hlc"), unit("node/engine"), scenarios, c.seedsJudge()}
	case strings.HasPrefix(file, "store/badgerstore/"):
		return []Judge{unit("store/badgerstore"), c.badgerJudge()}
	case strings.HasPrefix(file, "store/"):
		return []Judge{unit("store"), scenarios, c.seedsJudge()}
	}
	return []Judge{unit(filepath.Dir(file)), scenarios, c.seedsJudge()}
}

// all returns every judge once, for the check of the unmutated code.
func (c judgeConfig) all() []Judge {
	return []Judge{{"unit tests", []string{"./node/engine/", "./hlc/", "./store/", "./store/badgerstore/"}}, scenarios, c.fieldsJudge(), c.seedsJudge(), c.badgerJudge()}
}

// runJudge runs go test with a judge's arguments in dir.
func runJudge(dir string, j Judge, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	args := append([]string{"test", "-count=1", "-failfast", "-timeout", timeout.String()}, j.Args...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return out, fmt.Errorf("timed out after %v", timeout)
	}
	return out, err
}

type result struct {
	m      Mutant
	status string // killed, survived, equivalent
	detail string
}

// runMutant applies one mutant in the work copy, runs its judges until one
// fails, and restores the file.
func runMutant(work string, m Mutant, cfg judgeConfig, verbose bool) result {
	path := filepath.Join(work, m.File)
	orig, err := os.ReadFile(path)
	if err != nil {
		return result{m, "survived", "cannot read: " + err.Error()}
	}
	defer os.WriteFile(path, orig, 0o644)
	mutated := bytes.Replace(orig, []byte(m.Old), []byte(m.New), 1)
	if err := os.WriteFile(path, mutated, 0o644); err != nil {
		return result{m, "survived", "cannot write: " + err.Error()}
	}
	start := time.Now()
	for _, j := range cfg.judges(m.File) {
		out, err := runJudge(work, j, cfg.timeout)
		if err == nil {
			continue
		}
		if verbose {
			fmt.Printf("--- %s killed by %s:\n%s\n", m.Name, j.Name, tail(out, 40))
		}
		if bytes.Contains(out, []byte("[build failed]")) || bytes.Contains(out, []byte("[setup failed]")) {
			return result{m, "survived", fmt.Sprintf("does not compile (%s): fix the mutant", j.Name)}
		}
		return result{m, "killed", fmt.Sprintf("by %s in %v: %s", j.Name, time.Since(start).Round(time.Second), firstFailure(out))}
	}
	if m.Equivalent != "" {
		return result{m, "equivalent", m.Equivalent}
	}
	return result{m, "survived", fmt.Sprintf("every judge passed in %v", time.Since(start).Round(time.Second))}
}

// firstFailure picks the most telling line of a failing judge's output.
func firstFailure(out []byte) string {
	lines := strings.Split(string(out), "\n")
	for _, want := range []string{"invariant", "seed ", "Error", "FAIL:", "panic:", "timed out"} {
		for _, l := range lines {
			if strings.Contains(l, want) {
				l = strings.TrimSpace(l)
				if len(l) > 160 {
					l = l[:160] + "…"
				}
				return l
			}
		}
	}
	return "failed"
}

func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func writeReport(path string, rs []result) error {
	var b strings.Builder
	b.WriteString("| mutant | file | bug | result |\n|---|---|---|---|\n")
	for _, r := range rs {
		res := r.status
		if r.detail != "" {
			res += ": " + r.detail
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.m.Name, r.m.File, r.m.Why, strings.ReplaceAll(res, "|", "\\|"))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
