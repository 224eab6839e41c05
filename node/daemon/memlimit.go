package daemon

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// AutoMemoryLimit is the memory_limit that sizes the Go runtime's soft
// memory limit to the machine: DefaultMemoryLimit, or less inside a memory
// cgroup (a container, a systemd MemoryMax=) whose limit is small.
const AutoMemoryLimit = "auto"

// DefaultMemoryLimit is the soft memory limit "auto" sets outside a small
// memory cgroup.
const DefaultMemoryLimit = 256 << 20

// cgroupHeapShare is the share of a memory cgroup's limit that "auto" gives
// the Go heap. The rest is for what the kernel charges the cgroup besides
// it: goroutine stacks, the binary's pages and, above all, the page cache of
// the store's memory-mapped files. Badger reads and writes its value log and
// tables through memory maps; squeezed out of the cgroup, those pages are
// read back from disk at every touch, and a backfill that fills a 300 MB
// cgroup with heap crawls (docs/PERFORMANCE.md, "The joiner in a 300 MB
// memory cgroup").
const cgroupHeapShare = 0.5

// minAutoMemoryLimit is the least soft limit "auto" sets: below it the
// collector would run all the time, and a cgroup that small cannot hold
// a node anyway.
const minAutoMemoryLimit = 64 << 20

// resolveMemoryLimit returns the soft memory limit in bytes for the
// memory_limit setting v (a size, "0" for none, or "auto"), and for "auto"
// the cgroup limit it was derived from (0 if none).
func resolveMemoryLimit(v string) (limit, cgroup int64, err error) {
	if strings.TrimSpace(v) != AutoMemoryLimit {
		limit, err = parseSize(v)
		return limit, 0, err
	}
	cgroup = cgroupMemoryLimit("/proc/self/cgroup", "/sys/fs/cgroup")
	return autoMemoryLimit(cgroup), cgroup, nil
}

// autoMemoryLimit is the soft limit "auto" sets in a memory cgroup of
// cgroup bytes (0: none).
func autoMemoryLimit(cgroup int64) int64 {
	limit := int64(DefaultMemoryLimit)
	if cgroup > 0 {
		limit = min(limit, max(int64(float64(cgroup)*cgroupHeapShare), minAutoMemoryLimit))
	}
	return limit
}

// cgroupMemoryLimit returns the memory limit in bytes of the cgroup the
// process is in (procCgroup is its /proc/<pid>/cgroup), the smallest of its
// own and its ancestors' (each bounds it), under the cgroup file system at
// root: cgroup v2 (memory.max) or v1 (memory/…/memory.limit_in_bytes). It
// returns 0 when there is no limit or it cannot be read.
func cgroupMemoryLimit(procCgroup, root string) int64 {
	f, err := os.Open(procCgroup)
	if err != nil {
		return 0
	}
	defer f.Close()
	v1, v2, ok := cgroupPaths(f)
	if !ok {
		return 0
	}
	if v1 != "" {
		if l := smallestLimit(filepath.Join(root, "memory"), v1, "memory.limit_in_bytes"); l > 0 {
			return l
		}
	}
	if v2 != "" {
		return smallestLimit(root, v2, "memory.max")
	}
	return 0
}

// cgroupPaths reads a /proc/<pid>/cgroup file: the path of the v1 memory
// controller's cgroup and that of the v2 (unified) one, either empty if
// absent.
func cgroupPaths(r io.Reader) (v1, v2 string, ok bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1 = parts[2]
			}
		}
	}
	return v1, v2, sc.Err() == nil && (v1 != "" || v2 != "")
}

// smallestLimit returns the smallest limit found in file of the cgroup at
// rel under base and of each of its ancestors, 0 if none has one. A value
// of "max" (v2) or one beyond 2^62 (v1's "unlimited") is no limit.
func smallestLimit(base, rel, file string) int64 {
	var smallest int64
	for p := path.Clean("/" + rel); ; p = path.Dir(p) {
		if l := readLimit(filepath.Join(base, filepath.FromSlash(p), file)); l > 0 && (smallest == 0 || l < smallest) {
			smallest = l
		}
		if p == "/" {
			return smallest
		}
	}
}

// readLimit reads one memory limit file; 0 means none (or unreadable).
func readLimit(file string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v >= 1<<62 {
		return 0
	}
	return v
}

// describeMemoryLimit says in words what limit was set and why.
func describeMemoryLimit(setting string, limit, cgroup int64) string {
	switch {
	case limit == 0:
		return "none"
	case strings.TrimSpace(setting) != AutoMemoryLimit:
		return fmt.Sprintf("%d MiB (memory_limit)", limit>>20)
	case cgroup > 0 && limit < DefaultMemoryLimit:
		return fmt.Sprintf("%d MiB (auto: half of the memory cgroup's %d MiB)", limit>>20, cgroup>>20)
	default:
		return fmt.Sprintf("%d MiB (auto)", limit>>20)
	}
}
