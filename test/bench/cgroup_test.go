package bench

// A child memory cgroup for the backfill's receiver (BENCH_RECEIVER_CGROUP_MB):
// made under this process's own memory cgroup, so that it stays inside
// whatever limits and accounting the parent is under (cgroup v1 with
// memory.use_hierarchy, or v2, where the hierarchy is always nested).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cgroupEnv tells the receiver process which cgroup it must be in (its path
// as /proc/self/cgroup shows it) before it starts its node.
const cgroupEnv = "SYNCNODE_BENCH_RECEIVER_CGROUP"

// memCgroup is a child memory cgroup made for one receiver.
type memCgroup struct {
	dir   string // in the cgroup file system
	rel   string // as /proc/<pid>/cgroup shows it
	v2    bool
	limit int64 // bytes
}

// cgroupStats is what the cgroup counted once the receiver exited.
type cgroupStats struct {
	Peak     int64 // bytes: v1 memory.max_usage_in_bytes, v2 memory.peak (-1 if the kernel has none)
	OOMKills int64 // v1 memory.oom_control oom_kill, v2 memory.events oom_kill
	Failcnt  int64 // times the limit was hit: v1 memory.failcnt (not a full count on every kernel: 0 or 1 on 6.18 here), v2 memory.events max

	ExitWait time.Duration // how long the receiver took to exit once its result was read (or its output ended)
	Exit     string        // its exit status ("<nil>" for 0)
}

// newBenchCgroup makes a child memory cgroup of mb MiB under this process's
// own and removes it when the benchmark ends. It skips the benchmark, with
// the reason, when none can be made.
func newBenchCgroup(b *testing.B, mb int) *memCgroup {
	cg, err := makeMemCgroup(fmt.Sprintf("syncnode-bench-%d-%d", os.Getpid(), time.Now().UnixNano()), int64(mb)<<20)
	if err != nil {
		b.Skipf("BENCH_RECEIVER_CGROUP_MB=%d: no writable memory cgroup: %v", mb, err)
	}
	b.Cleanup(func() {
		if err := cg.remove(); err != nil {
			b.Errorf("removing the receiver's cgroup: %v", err)
		}
	})
	return cg
}

// makeMemCgroup makes the cgroup name, of limit bytes and no swap, under
// this process's own memory cgroup: v1 if the memory controller is mounted
// as a v1 hierarchy, else v2 if the unified hierarchy has it.
func makeMemCgroup(name string, limit int64) (*memCgroup, error) {
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var v1Path, v2Path string
	hasV2 := false
	for _, line := range strings.Split(string(own), "\n") {
		f := strings.SplitN(line, ":", 3) // hierarchy-ID:controllers:path
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			v2Path, hasV2 = f[2], true
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				v1Path = f[2]
			}
		}
	}
	var why []string
	if v1Path != "" {
		root, mnt, ok := findMount(string(mounts), "cgroup", "memory")
		if ok {
			cg := &memCgroup{dir: filepath.Join(mnt, strings.TrimPrefix(v1Path, root), name), rel: filepath.Join(v1Path, name), limit: limit}
			if err := cg.create(); err == nil {
				return cg, nil
			} else {
				why = append(why, "v1: "+err.Error())
			}
		} else {
			why = append(why, "v1: the memory controller is not mounted here")
		}
	}
	if hasV2 {
		root, mnt, ok := findMount(string(mounts), "cgroup2", "")
		if ok {
			parent := filepath.Join(mnt, strings.TrimPrefix(v2Path, root))
			cg := &memCgroup{dir: filepath.Join(parent, name), rel: filepath.Join(v2Path, name), v2: true, limit: limit}
			if err := enableV2Memory(parent); err != nil {
				why = append(why, "v2: "+err.Error())
			} else if err := cg.create(); err != nil {
				why = append(why, "v2: "+err.Error())
			} else {
				return cg, nil
			}
		} else {
			why = append(why, "v2: no cgroup2 mount")
		}
	}
	if len(why) == 0 {
		return nil, errors.New("this process is in no memory cgroup (/proc/self/cgroup)")
	}
	return nil, errors.New(strings.Join(why, "; "))
}

// findMount returns the root and mount point of the first mount of fstype
// (from /proc/self/mountinfo) whose super options include opt ("" for any).
func findMount(mountinfo, fstype, opt string) (root, point string, ok bool) {
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, found := strings.Cut(line, " - ")
		if !found {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post) // b: fstype source super-options
		if len(a) < 5 || len(b) < 3 || b[0] != fstype {
			continue
		}
		if opt != "" && !hasWord(b[2], ",", opt) {
			continue
		}
		return a[3], a[4], true
	}
	return "", "", false
}

func hasWord(list, sep, w string) bool {
	for _, x := range strings.Split(list, sep) {
		if x == w {
			return true
		}
	}
	return false
}

// enableV2Memory makes the memory controller available to the children of
// the v2 cgroup dir. It fails when dir holds processes and is not the root:
// v2 lets no such cgroup delegate the memory controller.
func enableV2Memory(dir string) error {
	ctl, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return err
	}
	if !hasWord(strings.TrimSpace(string(ctl)), " ", "memory") {
		return fmt.Errorf("the memory controller is not enabled for %s (its parent's cgroup.subtree_control)", dir)
	}
	sub, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	if hasWord(strings.TrimSpace(string(sub)), " ", "memory") {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory"), 0); err != nil {
		return fmt.Errorf("enabling memory for the children of %s: %w", dir, err)
	}
	return nil
}

// create makes the cgroup directory and sets its limit, with swap excluded
// (v1 memory.memsw.limit_in_bytes where the kernel accounts swap; v2
// memory.swap.max 0), so that swapping cannot hide the limit.
func (cg *memCgroup) create() error {
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		return err
	}
	lim := strconv.FormatInt(cg.limit, 10)
	var err error
	if cg.v2 {
		err = cg.write("memory.max", lim)
		if err == nil && cg.exists("memory.swap.max") {
			err = cg.write("memory.swap.max", "0")
		}
	} else {
		err = cg.write("memory.limit_in_bytes", lim)
		if err == nil && cg.exists("memory.memsw.limit_in_bytes") {
			err = cg.write("memory.memsw.limit_in_bytes", lim)
		}
	}
	if err != nil {
		_ = os.Remove(cg.dir)
		return err
	}
	return nil
}

func (cg *memCgroup) exists(file string) bool {
	_, err := os.Stat(filepath.Join(cg.dir, file))
	return err == nil
}

func (cg *memCgroup) write(file, v string) error {
	return os.WriteFile(filepath.Join(cg.dir, file), []byte(v), 0)
}

// add moves the process pid into the cgroup.
func (cg *memCgroup) add(pid int) error {
	return cg.write("cgroup.procs", strconv.Itoa(pid))
}

func (cg *memCgroup) version() string {
	if cg.v2 {
		return "v2"
	}
	return "v1"
}

// stats reads the cgroup's peak usage and OOM kills.
func (cg *memCgroup) stats() cgroupStats {
	s := cgroupStats{Peak: -1}
	if cg.v2 {
		s.Peak = cg.readInt("memory.peak")
		s.OOMKills = cg.keyed("memory.events", "oom_kill")
		s.Failcnt = cg.keyed("memory.events", "max")
	} else {
		s.Peak = cg.readInt("memory.max_usage_in_bytes")
		s.OOMKills = cg.keyed("memory.oom_control", "oom_kill")
		s.Failcnt = cg.readInt("memory.failcnt")
	}
	return s
}

// readInt reads a file holding one number; -1 if there is none.
func (cg *memCgroup) readInt(file string) int64 {
	b, err := os.ReadFile(filepath.Join(cg.dir, file))
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// keyed reads the number after key in a "key value" file; -1 if absent.
func (cg *memCgroup) keyed(file, key string) int64 {
	b, err := os.ReadFile(filepath.Join(cg.dir, file))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// remove deletes the cgroup, retrying for a few seconds while the kernel
// still counts an exiting process in it.
func (cg *memCgroup) remove() error {
	var err error
	for i := 0; i < 50; i++ {
		if err = os.Remove(cg.dir); err == nil || os.IsNotExist(err) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// awaitCgroup is called by the receiver process first: when the parent
// moves it into a cgroup (cgroupEnv), it waits, at most 10 s, until it is
// there, so that the node's memory is charged to that cgroup.
func awaitCgroup() error {
	want := os.Getenv(cgroupEnv)
	if want == "" {
		return nil
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasSuffix(line, ":"+want) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not moved into the cgroup %s within 10 s: %s", want, b)
		}
	}
}
