package e2e

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// binary is the syncnode binary that TestMain built for this run.
var binary string

// TestMain builds the syncnode binary once, from the module this package
// is in, into a directory it removes at the end.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.list"); (f != nil && f.Value.String() != "") || testing.Short() {
		// Listing tests (the CI's fuzz discovery) or -short: nothing runs
		// a process, so nothing is built.
		os.Exit(m.Run())
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "syncnode-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: making a directory for the binary:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "syncnode")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", binary, "./cmd/syncnode")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/syncnode (in %s) failed: %v\n%s", root, err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", binary, time.Since(start).Round(time.Millisecond))
	return m.Run()
}

// moduleRoot is the nearest directory at or above the working directory
// (the package's, under go test) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	for i := 0; i < 64; i++ {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("finding the module root: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("finding the module root: no go.mod above the working directory")
}

// requireBinary skips a test run with -short, where TestMain builds
// nothing.
func requireBinary(t *testing.T) {
	t.Helper()
	if binary == "" {
		t.Skip("e2e tests run the syncnode binary; skipped with -short")
	}
}
