package bench

// Benchmarks of the running node (node.Node on real libp2p hosts over TCP on
// 127.0.0.1, each with a real Badger store in a temporary directory), each
// printed beside the limit measured in the same run and the ratio. Every node
// runs with node.DefaultLocalConfig(): loopback TCP, fast timers, no fsync.
// Run them with
//
//	go test ./test/bench -run '^$' -bench Node -benchtime 1x
//
// The defaults are sized to take about a minute each on a small machine; the
// issue's sizes are given beside each variable:
//
//	BENCH_BACKFILL_RECORDS  200000  (issue: 1000000) records backfilled to a new member
//	BENCH_CATCHUP_RECORDS   200000  (issue: 1000000) records of the library in the catch-up benchmark
//	BENCH_CATCHUP_MISSED    1000    (issue: 1000)    records the restarted node missed
//	BENCH_LIVE_CHANGES      100000  (issue: 100000)  shared changes written one at a time
//	BENCH_LATENCY_RATE      1000    (issue: 1000)    changes per second in the latency benchmark
//	BENCH_LATENCY_SECONDS   3       (issue: "a few") seconds of writes in the latency benchmark
//	BENCH_LATENCY_NODES     5       (issue: 5)       nodes of the full mesh
//	BENCH_LATENCY_PRELOAD   0                        shared changes in the library before the latency run
//	BENCH_LATENCY_ALL_WRITE 0       (issue 16: 1)    1: every node writes in turn (the rate is the total), else only the first
//	BENCH_WIRE_CHANGES      10000                    changes of the wire-bytes benchmark
//	BENCH_WIRE_PAYLOAD      256                      payload bytes of each of them
//	BENCH_WRITERS           32                       concurrent writers where a benchmark loads a node
//
// SYNCNODE_BENCH_LOG=1 sends the nodes' debug logs to stderr. The backfill's
// receiver runs in a child process, out of reach of go test's -cpuprofile and
// -memprofile: BENCH_RECEIVER_CPUPROFILE=file profiles its CPU during the
// backfill, and BENCH_RECEIVER_MEMPROFILE=file writes its heap profile once
// the last record arrived, BENCH_RECEIVER_PEAKPROFILE=file each time the
// sampled HeapInuse peaks (as of the last GC). As an experiment, BENCH_RECEIVER_MEMTABLES=n
// gives the receiver's store n Badger memtables (the node's default is 2);
// The child sets the Go memory limit the syncnode binary sets by default
// (memory_limit "auto": 256 MiB, or half its memory cgroup's limit);
// BENCH_RECEIVER_GOMEMLIMIT sets its GOMEMLIMIT instead;
// BENCH_RECEIVER_SYNCWRITES=1 turns SyncWrites on in its store (the node's
// default outside the local profile, which the benchmark's nodes use).
// BENCH_RECEIVER_CGROUP_MB=n runs the receiver in a memory cgroup of n MiB
// (issue 16: 300), made as a child of this process's own memory cgroup
// (cgroup v1 memory.limit_in_bytes and memory.memsw.limit_in_bytes, or v2
// memory.max with memory.swap.max 0; as root) and removed at the end; the
// benchmark reports the cgroup's peak usage and OOM kills, fails if the
// receiver was OOM-killed, and is skipped, with the reason, where no such
// cgroup can be made (cgroup_test.go).

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	p2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/daemon"
	"github.com/syncnode/syncnode/store/badgerstore"
)

// The receiver of BenchmarkNodeBackfill runs in a child process (this test
// binary, re-executed with receiverEnv set), so that its peak RSS is its own.
const (
	receiverEnv    = "SYNCNODE_BENCH_RECEIVER"
	receiverDirEnv = "SYNCNODE_BENCH_RECEIVER_DIR"
)

func TestMain(m *testing.M) {
	if os.Getenv(receiverEnv) != "" {
		os.Exit(runReceiver())
	}
	os.Exit(m.Run())
}

const (
	ownedModel  = "location" // device-owned in engine.DefaultRegistry()
	sharedModel = "tag"      // shared
	localhost   = "/ip4/127.0.0.1/tcp/0"
)

// envInt reads a size from the environment.
func envInt(tb testing.TB, name string, def, least int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		tb.Fatalf("%s=%q: want a number of at least %d", name, v, least)
	}
	return n
}

func benchLogger(name string) *slog.Logger {
	if os.Getenv("SYNCNODE_BENCH_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// cborPayload returns a CBOR byte string of exactly size bytes in all, of
// random content.
func cborPayload(tb testing.TB, size int) []byte {
	var head []byte
	switch {
	case size >= 1 && size-1 < 24:
		head = []byte{0x40 | byte(size-1)}
	case size >= 2 && size-2 < 256:
		head = []byte{0x58, byte(size - 2)}
	case size >= 3 && size-3 < 65536:
		head = []byte{0x59, byte((size - 3) >> 8), byte(size - 3)}
	default:
		tb.Fatalf("payload of %d bytes cannot be made", size)
	}
	p := make([]byte, size)
	copy(p, head)
	if _, err := rand.Read(p[len(head):]); err != nil { // random: incompressible
		tb.Fatal(err)
	}
	return p
}

// payloads gives the payload of write i. Benchmarks that count bytes or
// compare with a raw store give every write its own random payload: with one
// payload for all, frame compression (and Badger's) would squeeze the
// repeats away and flatter the figures.
type payloads func(i int) []byte

// samePayload gives every write the same payload.
func samePayload(p []byte) payloads { return func(int) []byte { return p } }

// distinctPayloads gives write i a CBOR byte string of exactly size bytes of
// its own pseudo-random (incompressible) content, made when asked for.
func distinctPayloads(tb testing.TB, size int) payloads {
	template := cborPayload(tb, size)
	head := 1 // the byte string's head, as cborPayload writes it
	switch {
	case size-1 < 24:
	case size-2 < 256:
		head = 2
	default:
		head = 3
	}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		tb.Fatal(err)
	}
	return func(i int) []byte {
		p := append([]byte(nil), template...)
		r := mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:]), uint64(i)))
		for j := head; j < len(p); j += 8 {
			var w [8]byte
			binary.LittleEndian.PutUint64(w[:], r.Uint64())
			copy(p[j:], w[:])
		}
		return p
	}
}

// ---- counting bytes ----

// byteCounter is a libp2p bandwidth reporter that counts the bytes read from
// and written to streams (after decryption and demultiplexing: Noise, Yamux
// and TCP framing are not counted), exactly and at once (libp2p's own
// BandwidthCounter updates its totals once a second).
type byteCounter struct {
	in, out atomic.Int64
	mu      sync.Mutex
	protoIn map[p2pproto.ID]int64
}

func newByteCounter() *byteCounter { return &byteCounter{protoIn: make(map[p2pproto.ID]int64)} }

func (c *byteCounter) LogSentMessage(n int64)                           { c.out.Add(n) }
func (c *byteCounter) LogRecvMessage(n int64)                           { c.in.Add(n) }
func (c *byteCounter) LogSentMessageStream(int64, p2pproto.ID, peer.ID) {}
func (c *byteCounter) LogRecvMessageStream(n int64, p p2pproto.ID, _ peer.ID) {
	c.mu.Lock()
	c.protoIn[p] += n
	c.mu.Unlock()
}
func (c *byteCounter) GetBandwidthForPeer(peer.ID) metrics.Stats { return metrics.Stats{} }
func (c *byteCounter) GetBandwidthForProtocol(p p2pproto.ID) metrics.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return metrics.Stats{TotalIn: c.protoIn[p]}
}
func (c *byteCounter) GetBandwidthTotals() metrics.Stats {
	return metrics.Stats{TotalIn: c.in.Load(), TotalOut: c.out.Load()}
}
func (c *byteCounter) GetBandwidthByPeer() map[peer.ID]metrics.Stats { return nil }
func (c *byteCounter) GetBandwidthByProtocol() map[p2pproto.ID]metrics.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[p2pproto.ID]metrics.Stats, len(c.protoIn))
	for p, n := range c.protoIn {
		out[p] = metrics.Stats{TotalIn: n}
	}
	return out
}
func (c *byteCounter) Reset()             {}
func (c *byteCounter) TrimIdle(time.Time) {}

// syncIn returns the bytes received on the node's protocol, and in all.
func (c *byteCounter) syncIn() (proto, total int64) {
	return c.GetBandwidthForProtocol(node.ProtocolID).TotalIn, c.in.Load()
}

// ---- hosts and nodes ----

// newHost builds a libp2p host with the node's own stack (TCP, Noise and
// TLS, Yamux, a connection manager) on 127.0.0.1, with the given identity
// and bandwidth reporter if not nil.
func newHost(tb testing.TB, key crypto.PrivKey, rep metrics.Reporter) host.Host {
	cm, err := connmgr.NewConnManager(64, 256, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		tb.Fatal(err)
	}
	opts := []libp2p.Option{
		libp2p.ListenAddrStrings(localhost),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent("syncnode-bench"),
	}
	if key != nil {
		opts = append(opts, libp2p.Identity(key))
	}
	if rep != nil {
		opts = append(opts, libp2p.BandwidthReporter(rep))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// benchNode is a started node; with a counter, on a host built here.
type benchNode struct {
	*node.Node
	name    string
	dir     string
	key     crypto.PrivKey
	host    host.Host // nil if the node built its own
	counter *byteCounter
}

// startNode starts a node over the store in dir. counted gives it a host
// built here with a byteCounter (and the identity key, kept for restarts).
func startNode(tb testing.TB, name, dir string, counted bool, key crypto.PrivKey) *benchNode {
	tb.Helper()
	return startNodeWith(tb, node.DefaultLocalConfig(), name, dir, counted, key)
}

// startNodeWith is startNode with cfg instead of node.DefaultLocalConfig().
func startNodeWith(tb testing.TB, cfg node.Config, name, dir string, counted bool, key crypto.PrivKey) *benchNode {
	tb.Helper()
	cfg.DataDir = dir
	bn := &benchNode{name: name, dir: dir, key: key}
	opts := []node.Option{node.WithLogger(benchLogger(name))}
	if counted {
		if bn.key == nil {
			k, _, err := crypto.GenerateEd25519Key(rand.Reader)
			if err != nil {
				tb.Fatal(err)
			}
			bn.key = k
		}
		bn.counter = newByteCounter()
		bn.host = newHost(tb, bn.key, bn.counter)
		opts = append(opts, node.WithHost(bn.host))
	}
	nd, err := node.New(cfg, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	if err := nd.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	bn.Node = nd
	return bn
}

func (bn *benchNode) close() {
	_ = bn.Node.Close()
	if bn.host != nil {
		_ = bn.host.Close()
	}
}

func memberOf(bn *benchNode) node.Member {
	return node.Member{Device: bn.Device(), Peer: bn.Host().ID(), Name: bn.name, Addrs: bn.Host().Addrs()}
}

// join makes every node a member of lib, with all of them as members.
func join(tb testing.TB, lib uuid.UUID, nodes ...*benchNode) {
	tb.Helper()
	var ms []node.Member
	for _, bn := range nodes {
		ms = append(ms, memberOf(bn))
	}
	for _, bn := range nodes {
		if _, err := bn.AddLibrary(context.Background(), lib, "bench", ms...); err != nil {
			tb.Fatal(err)
		}
	}
}

// startMesh starts n nodes (named n0, n1, …) that are the members of a new
// library, and waits until every session is live.
func startMesh(tb testing.TB, n int) ([]*benchNode, uuid.UUID) {
	tb.Helper()
	var nodes []*benchNode
	for i := 0; i < n; i++ {
		nodes = append(nodes, startNode(tb, fmt.Sprintf("n%d", i), tb.TempDir(), false, nil))
	}
	lib := uuid.New()
	join(tb, lib, nodes...)
	waitLive(tb, lib, nodes...)
	return nodes, lib
}

// waitLive waits until every node sees every other member of lib live.
func waitLive(tb testing.TB, lib uuid.UUID, nodes ...*benchNode) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, bn := range nodes {
		for {
			ps, err := bn.Library(lib).Peers(context.Background())
			if err != nil {
				tb.Fatal(err)
			}
			live := len(ps) == len(nodes)-1
			for _, p := range ps {
				live = live && p.State == "live"
			}
			if live {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("%s: peers not live after 30 s: %+v", bn.name, ps)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// written is one write and the version it made.
type written struct {
	id uuid.UUID
	v  hlc.HLC
}

// writeMany writes every id with data, by writers goroutines, as device-owned
// or shared records; it returns the writes in the order of their versions.
func writeMany(tb testing.TB, l *node.Library, shared bool, ids []uuid.UUID, data payloads, writers int) ([]written, time.Duration) {
	tb.Helper()
	out := make([]written, len(ids))
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				var v hlc.HLC
				var err error
				if shared {
					v, err = l.PutShared(ctx, sharedModel, ids[i], data(i))
				} else {
					v, err = l.PutOwned(ctx, ownedModel, ids[i], data(i))
				}
				if err != nil {
					failed.Store(err)
					return
				}
				out[i] = written{ids[i], v}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if err, ok := failed.Load().(error); ok {
		tb.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].v.Less(out[j].v) })
	return out, d
}

func newIDs(n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
	}
	return ids
}

// waitVersion polls until l holds id at version v or newer.
func waitVersion(l *node.Library, model string, id uuid.UUID, v hlc.HLC, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		r, err := l.Get(context.Background(), model, id)
		if err == nil && !r.Version.Less(v) {
			return nil
		}
		if err != nil && !errors.Is(err, node.ErrNotFound) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %s not at version %s after %v (err %v, version %s)", model, id, v, timeout, err, r.Version)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// countRecords counts the live records of a model type, as a user's count
// does (Library.Count: the Badger store reads no payload for it).
func countRecords(l *node.Library, model string) (int, error) {
	counts, err := l.Count(context.Background())
	if err != nil {
		return 0, err
	}
	for _, c := range counts {
		if c.ModelType == model {
			return c.Records, nil
		}
	}
	return 0, fmt.Errorf("no model type %q", model)
}

// missing returns the writes l does not hold at their version yet.
func missing(l *node.Library, model string, ws []written) []written {
	var out []written
	for _, w := range ws {
		r, err := l.Get(context.Background(), model, w.id)
		if err != nil || r.Version.Less(w.v) {
			out = append(out, w)
		}
	}
	return out
}

// ---- following events ----

// tracker records when each of a set of records first shows up in a
// library's events. If the subscriber lost events (Missed), wait polls Get
// for the rest.
type tracker struct {
	idx    map[uuid.UUID]int
	mu     sync.Mutex
	recv   []time.Time
	left   int
	missed int
	done   chan struct{}
}

func track(tb testing.TB, ctx context.Context, l *node.Library, ids []uuid.UUID, idx map[uuid.UUID]int) *tracker {
	tb.Helper()
	if idx == nil {
		idx = make(map[uuid.UUID]int, len(ids))
		for i, id := range ids {
			idx[id] = i
		}
	}
	t := &tracker{idx: idx, recv: make([]time.Time, len(ids)), left: len(ids), done: make(chan struct{})}
	ch, err := l.Subscribe(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		for ev := range ch {
			now := time.Now()
			t.mu.Lock()
			t.missed += ev.Missed
			if i, ok := t.idx[ev.ID]; ok {
				t.mark(i, now)
			}
			t.mu.Unlock()
		}
	}()
	return t
}

func (t *tracker) mark(i int, at time.Time) {
	if t.recv[i].IsZero() {
		t.recv[i] = at
		if t.left--; t.left == 0 {
			close(t.done)
		}
	}
}

// wait returns when every record showed up (then the time the last did),
// polling Get for the rest every 100 ms once events were lost.
func (t *tracker) wait(l *node.Library, model string, ids []uuid.UUID, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return t.last(), nil
		case <-deadline:
			t.mu.Lock()
			defer t.mu.Unlock()
			return time.Time{}, fmt.Errorf("%d of %d records missing after %v (%d events lost)", t.left, len(ids), timeout, t.missed)
		case <-tick.C:
			t.mu.Lock()
			lossy := t.missed > 0
			var todo []int
			if lossy {
				for i := range t.recv {
					if t.recv[i].IsZero() {
						todo = append(todo, i)
					}
				}
			}
			t.mu.Unlock()
			for _, i := range todo {
				if _, err := l.Get(context.Background(), model, ids[i]); err == nil {
					t.mu.Lock()
					t.mark(i, time.Now())
					t.mu.Unlock()
				}
			}
		}
	}
}

func (t *tracker) lost() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.missed
}

func (t *tracker) last() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var last time.Time
	for _, r := range t.recv {
		if r.After(last) {
			last = r
		}
	}
	return last
}

// ---- limits measured in the same run ----

const rawProtocol = p2pproto.ID("/syncnode-bench/raw/1")

// rawHosts connects two hosts of the node's stack on 127.0.0.1.
func rawHosts(tb testing.TB) (host.Host, host.Host) {
	h1, h2 := newHost(tb, nil, nil), newHost(tb, nil, nil)
	if err := h1.Connect(context.Background(), peer.AddrInfo{ID: h2.ID(), Addrs: h2.Addrs()}); err != nil {
		tb.Fatal(err)
	}
	return h1, h2
}

// rawStreamRate writes total bytes on one libp2p stream between two hosts
// on 127.0.0.1 in 64 KiB chunks, and returns bytes per second, measured
// until the reader has them all.
func rawStreamRate(tb testing.TB, total int) float64 {
	h1, h2 := rawHosts(tb)
	defer h1.Close()
	defer h2.Close()
	got := make(chan int64, 1)
	h2.SetStreamHandler(rawProtocol, func(s network.Stream) {
		n, _ := io.Copy(io.Discard, s)
		got <- n
		_ = s.Close()
	})
	s, err := h1.NewStream(context.Background(), h2.ID(), rawProtocol)
	if err != nil {
		tb.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	start := time.Now()
	for left := total; left > 0; left -= len(chunk) {
		if _, err := s.Write(chunk[:min(left, len(chunk))]); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		tb.Fatal(err)
	}
	n := <-got
	d := time.Since(start)
	if n != int64(total) {
		tb.Fatalf("raw stream: read %d of %d bytes", n, total)
	}
	return float64(total) / d.Seconds()
}

// rawStreamLatency sends count messages of size bytes at the given rate on
// one libp2p stream between two hosts on 127.0.0.1, and returns the one-way
// delay of each (both ends are in this process, on one clock).
func rawStreamLatency(tb testing.TB, count, size int, period time.Duration) []time.Duration {
	h1, h2 := rawHosts(tb)
	defer h1.Close()
	defer h2.Close()
	sent := make([]time.Time, count)
	recv := make([]time.Time, count)
	done := make(chan struct{})
	h2.SetStreamHandler(rawProtocol, func(s network.Stream) {
		defer close(done)
		buf := make([]byte, size)
		for i := 0; i < count; i++ {
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			recv[binary.BigEndian.Uint32(buf)] = time.Now()
		}
	})
	s, err := h1.NewStream(context.Background(), h2.ID(), rawProtocol)
	if err != nil {
		tb.Fatal(err)
	}
	msg := make([]byte, size)
	start := time.Now()
	for i := 0; i < count; i++ {
		if d := time.Until(start.Add(time.Duration(i) * period)); d > 0 {
			time.Sleep(d)
		}
		binary.BigEndian.PutUint32(msg, uint32(i))
		sent[i] = time.Now()
		if _, err := s.Write(msg); err != nil {
			tb.Fatal(err)
		}
	}
	<-done
	_ = s.Close()
	out := make([]time.Duration, 0, count)
	for i := range sent {
		if !recv[i].IsZero() {
			out = append(out, recv[i].Sub(sent[i]))
		}
	}
	return out
}

// rawBadgerSingleRate writes n records of the engine's shape (a record key
// and an index key) one transaction per record, SyncWrites off, and returns
// records per second: the limit of writes made one at a time.
func rawBadgerSingleRate(tb testing.TB, n int, data []byte) float64 {
	db, err := badger.Open(badger.DefaultOptions(tb.TempDir()).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	for i := 0; i < n; i++ {
		id := uuid.New()
		err := db.Update(func(txn *badger.Txn) error {
			if err := txn.Set(append([]byte{'r'}, id[:]...), data); err != nil {
				return err
			}
			return txn.Set(strconv.AppendInt(append([]byte{'i'}, id[:]...), int64(i), 10), nil)
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// ---- 1. backfill ----

// receiverJob is what the parent tells the receiver process, once the
// receiver is a member on the sender.
type receiverJob struct {
	Library     uuid.UUID
	Sender      receiverPeer
	Records     int
	LastID      uuid.UUID
	LastVersion string
	Timeout     time.Duration
}

type receiverPeer struct {
	Device uuid.UUID
	Peer   string
	Addrs  []string
}

type receiverResult struct {
	Err          string
	Elapsed      time.Duration
	Count        int
	VmHWMkB      int64 // peak RSS of the receiver process
	StartRSSkB   int64 // RSS once the node started, before the backfill
	PeakHeapUse  uint64
	PeakAnonkB   int64         // sampled peak of RssAnon: Go heap and runtime
	PeakFilekB   int64         // sampled peak of RssFile: Badger's memory-mapped files
	CPU          time.Duration // user and system CPU the receiver used from the job to the last record
	HeapSamples  int
	LastArrived  time.Duration
	CountElapsed time.Duration
	MemoryLimit  string // the Go soft memory limit the receiver ran with, as the binary sets it

	Cgroup *cgroupStats `json:"-"` // set by the parent when the receiver ran in a memory cgroup
}

// cpuTime returns the user and system CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus reads a kB field of /proc/self/status (VmHWM, VmRSS).
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return -1
}

// runReceiver is the receiver process of BenchmarkNodeBackfill: it starts a
// node (on its own host, as in production), prints its identity, reads the
// job, joins the library and waits until it holds every record.
func runReceiver() int {
	// In a cgroup (BENCH_RECEIVER_CGROUP_MB), the node starts once it is in it.
	if err := awaitCgroup(); err != nil {
		_ = json.NewEncoder(os.Stdout).Encode(receiverResult{Err: err.Error()})
		return 1
	}
	// The soft memory limit the syncnode binary sets by default (its
	// memory_limit "auto", sized to the cgroup), or GOMEMLIMIT if set
	// (BENCH_RECEIVER_GOMEMLIMIT).
	memoryLimit, err := daemon.ApplyMemoryLimit(daemon.AutoMemoryLimit)
	if err != nil {
		_ = json.NewEncoder(os.Stdout).Encode(receiverResult{Err: err.Error()})
		return 1
	}
	var peak atomic.Uint64
	var peakAnon, peakFile atomic.Int64
	var samples atomic.Int64
	stop := make(chan struct{})
	go func() { // Go heap in use, sampled every 100 ms
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			samples.Add(1)
			if kb := procStatus("RssAnon"); kb > peakAnon.Load() {
				peakAnon.Store(kb)
			}
			if kb := procStatus("RssFile"); kb > peakFile.Load() {
				peakFile.Store(kb)
			}
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
				if path := os.Getenv("BENCH_RECEIVER_PEAKPROFILE"); path != "" {
					if f, err := os.Create(path); err == nil {
						_ = pprof.Lookup("heap").WriteTo(f, 0)
						f.Close()
					}
				}
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	enc := json.NewEncoder(os.Stdout)
	fail := func(err error) int {
		_ = enc.Encode(receiverResult{Err: err.Error()})
		return 1
	}
	cfg := node.DefaultLocalConfig()
	cfg.DataDir = os.Getenv(receiverDirEnv)
	if os.Getenv("BENCH_RECEIVER_SYNCWRITES") == "1" {
		cfg.SyncWrites = true // the default outside the local profile
	}
	opts := []node.Option{node.WithLogger(benchLogger("B"))}
	if v := os.Getenv("BENCH_RECEIVER_MEMTABLES"); v != "" {
		// An experiment: the node's store with fewer Badger memtables.
		sopts := badgerstore.DefaultOptions()
		sopts.SyncWrites = cfg.SyncWrites
		if sopts.NumMemtables, err = strconv.Atoi(v); err != nil {
			return fail(err)
		}
		st, err := badgerstore.Open(cfg.DataDir, sopts)
		if err != nil {
			return fail(err)
		}
		defer st.Close()
		opts = append(opts, node.WithStore(st))
	}
	nd, err := node.New(cfg, opts...)
	if err != nil {
		return fail(err)
	}
	if err := nd.Start(context.Background()); err != nil {
		return fail(err)
	}
	defer nd.Close()
	var addrs []string
	for _, a := range nd.Host().Addrs() {
		addrs = append(addrs, a.String())
	}
	if err := enc.Encode(receiverPeer{Device: nd.Device(), Peer: nd.Host().ID().String(), Addrs: addrs}); err != nil {
		return 1
	}
	var job receiverJob
	if err := json.NewDecoder(bufio.NewReader(os.Stdin)).Decode(&job); err != nil {
		return fail(fmt.Errorf("reading the job: %w", err))
	}
	startRSS := procStatus("VmRSS")
	lastV, err := hlc.Parse(job.LastVersion)
	if err != nil {
		return fail(err)
	}
	pid, err := peer.Decode(job.Sender.Peer)
	if err != nil {
		return fail(err)
	}
	var maddrs []ma.Multiaddr
	for _, a := range job.Sender.Addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return fail(err)
		}
		maddrs = append(maddrs, m)
	}
	if path := os.Getenv("BENCH_RECEIVER_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	start, cpu0 := time.Now(), cpuTime()
	l, err := nd.AddLibrary(context.Background(), job.Library, "bench", node.Member{Device: job.Sender.Device, Peer: pid, Name: "A", Addrs: maddrs})
	if err != nil {
		return fail(err)
	}
	// Pages come in version order: the last record written comes last.
	if err := waitVersion(l, ownedModel, job.LastID, lastV, job.Timeout); err != nil {
		return fail(err)
	}
	lastArrived := time.Since(start)
	cpu := cpuTime() - cpu0
	elapsed := lastArrived
	if path := os.Getenv("BENCH_RECEIVER_MEMPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fail(err)
		}
		err = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
		if err != nil {
			return fail(err)
		}
	}
	// Then every record must be there; if not yet, the time is when they are.
	count, err := countRecords(l, ownedModel)
	for err == nil && count < job.Records && time.Since(start) < job.Timeout {
		time.Sleep(100 * time.Millisecond)
		count, err = countRecords(l, ownedModel)
		elapsed = time.Since(start)
	}
	if err != nil {
		return fail(err)
	}
	close(stop)
	res := receiverResult{Elapsed: elapsed, Count: count, VmHWMkB: procStatus("VmHWM"), StartRSSkB: startRSS,
		PeakHeapUse: peak.Load(), PeakAnonkB: peakAnon.Load(), PeakFilekB: peakFile.Load(), HeapSamples: int(samples.Load()), CPU: cpu, LastArrived: lastArrived, CountElapsed: time.Since(start),
		MemoryLimit: memoryLimit}
	if err := enc.Encode(res); err != nil {
		return 1
	}
	return 0
}

// BenchmarkNodeBackfill writes N device-owned records (256-byte payloads) on
// node A, then adds a new, empty node B as a member, and measures the time
// until B holds all N. B runs in a child process (this binary, re-executed),
// so its peak RSS (VmHWM) is its own; its peak Go heap in use, sampled every
// 100 ms, is reported too. Beside it, measured in the same run: a raw Badger
// WriteBatch of as many records, and a raw libp2p stream carrying N*256
// bytes between two hosts on 127.0.0.1 in 64 KiB chunks. Targets: records/s
// at least 0.5 of raw Badger's; receiver RSS at most 300 MB.
// BENCH_BACKFILL_RECORDS: default 200,000; the size is 1,000,000.
func BenchmarkNodeBackfill(b *testing.B) {
	n := envInt(b, "BENCH_BACKFILL_RECORDS", 200_000, 1000)
	writers := envInt(b, "BENCH_WRITERS", 32, 1)
	cgroupMB := envInt(b, "BENCH_RECEIVER_CGROUP_MB", 0, 1)
	data := distinctPayloads(b, payloadSize)
	for it := 0; it < b.N; it++ {
		var cg *memCgroup
		if cgroupMB > 0 { // made first: skipped before the sender's writes if there is none
			cg = newBenchCgroup(b, cgroupMB)
		}
		a := startNode(b, "A", b.TempDir(), false, nil)
		lib := uuid.New()
		join(b, lib, a)
		ws, wd := writeMany(b, a.Library(lib), false, newIDs(n), data, writers)
		last := ws[len(ws)-1]
		fmt.Printf("backfill: A wrote %d records with %d writers in %v (%.0f records/s)\n", n, writers, wd.Round(time.Millisecond), float64(n)/wd.Seconds())

		senderCPU := cpuTime()
		res := runBackfillReceiver(b, a, lib, n, last, cg)
		senderCPU = cpuTime() - senderCPU // this process: A serving (the receiver is a child)
		a.close()
		if res.Count != n {
			b.Fatalf("B holds %d of %d records", res.Count, n)
		}

		rate := float64(n) / res.Elapsed.Seconds()
		mbps := float64(n*payloadSize) / res.Elapsed.Seconds() / 1e6
		badgerRate := rawBadgerRate(b, n, data)
		streamRate := rawStreamRate(b, n*payloadSize) / 1e6
		rssMB := float64(res.VmHWMkB) / 1024
		b.ReportMetric(res.Elapsed.Seconds(), "s")
		b.ReportMetric(rate, "records/s")
		b.ReportMetric(mbps, "payload-MB/s")
		b.ReportMetric(badgerRate, "badger-records/s")
		b.ReportMetric(rate/badgerRate, "ratio-badger")
		b.ReportMetric(streamRate, "stream-MB/s")
		b.ReportMetric(mbps/streamRate, "ratio-stream")
		b.ReportMetric(rssMB, "receiver-peak-RSS-MB")
		b.ReportMetric(float64(res.PeakHeapUse)/(1<<20), "receiver-peak-heap-MB")
		b.ReportMetric(float64(res.PeakAnonkB)/1024, "receiver-peak-anon-MB")
		b.ReportMetric(float64(res.CPU.Microseconds())/float64(n), "receiver-cpu-us/record")
		b.ReportMetric(float64(senderCPU.Microseconds())/float64(n), "sender-cpu-us/record")
		b.ReportMetric(float64(res.PeakFilekB)/1024, "receiver-peak-file-MB")
		fmt.Printf("backfill of %d records: %v, %.0f records/s, %.1f MB/s of payload; raw Badger WriteBatch %.0f records/s, ratio %.2f (target ≥ 0.5: %s); raw libp2p stream %.1f MB/s, ratio %.3f\n",
			n, res.Elapsed.Round(time.Millisecond), rate, mbps, badgerRate, rate/badgerRate, verdict(rate/badgerRate >= 0.5), streamRate, mbps/streamRate)
		fmt.Printf("backfill CPU per record (user+system): receiver %.1f µs, sender %.1f µs (the machine has %d cores)\n",
			float64(res.CPU.Microseconds())/float64(n), float64(senderCPU.Microseconds())/float64(n), runtime.NumCPU())
		fmt.Printf("backfill receiver (child process, Go memory limit %s): peak RSS (VmHWM) %.0f MB (target ≤ 300 MB: %s), RSS after start %.0f MB; sampled peaks: RssAnon %.0f MB (heap and runtime), RssFile %.0f MB (memory-mapped database files), Go HeapInuse %.0f MB (%d samples at 100 ms)\n",
			res.MemoryLimit, rssMB, verdict(rssMB <= 300), float64(res.StartRSSkB)/1024, float64(res.PeakAnonkB)/1024, float64(res.PeakFilekB)/1024, float64(res.PeakHeapUse)/(1<<20), res.HeapSamples)
		if cs := res.Cgroup; cs != nil {
			b.ReportMetric(float64(cs.Peak)/(1<<20), "cgroup-peak-MB")
			b.ReportMetric(float64(cs.OOMKills), "cgroup-oom-kills")
			fmt.Printf("backfill receiver in a %d MiB memory cgroup (%s, %s): no OOM kill (oom_kill %d), peak usage %.0f MiB (page cache included), failcnt %d; backfill %v, records counted %v after the start, exit after %v: %v\n",
				cgroupMB, cg.version(), cg.dir, cs.OOMKills, float64(cs.Peak)/(1<<20), cs.Failcnt, res.Elapsed.Round(time.Millisecond),
				res.CountElapsed.Round(time.Millisecond), cs.ExitWait.Round(time.Millisecond), cs.Exit)
		}
	}
}

// runBackfillReceiver starts the receiver process (in the cgroup cg, if not
// nil), makes it a member on a, and returns what it measured. Every wait is
// bounded: the process is killed timeout+30 s after its start.
func runBackfillReceiver(b *testing.B, a *benchNode, lib uuid.UUID, n int, last written, cg *memCgroup) receiverResult {
	timeout := time.Duration(n/1000+60) * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), receiverEnv+"=1", receiverDirEnv+"="+b.TempDir())
	if v := os.Getenv("BENCH_RECEIVER_GOMEMLIMIT"); v != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+v)
	}
	if cg != nil {
		cmd.Env = append(cmd.Env, cgroupEnv+"="+cg.rel)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited, exitErr := false, error(nil)
	wait := func() error { // at most 30 s, then the process is killed
		if !exited {
			exitErr, exited = waitBounded(cmd, 30*time.Second), true
		}
		return exitErr
	}
	defer func() { _ = wait() }()
	// oom fails the benchmark if the receiver was OOM-killed in its cgroup
	// (called once it exits: reading from it failed, or it finished).
	oom := func() *cgroupStats {
		if cg == nil {
			return nil
		}
		t0 := time.Now()
		err := wait()
		cs := cg.stats()
		cs.ExitWait, cs.Exit = time.Since(t0), fmt.Sprint(err)
		if cs.OOMKills > 0 {
			b.Fatalf("receiver OOM-killed in its %d MiB memory cgroup (%s): oom_kill %d, failcnt %d, peak usage %.0f MiB; exit: %v",
				cg.limit>>20, cg.version(), cs.OOMKills, cs.Failcnt, float64(cs.Peak)/(1<<20), err)
		}
		return &cs
	}
	// failed fails the benchmark when the receiver's output ended early,
	// saying how it exited.
	failed := func(what string, err error) {
		cs := oom()
		why := fmt.Sprintf("exit: %v", wait())
		if ctx.Err() != nil {
			why += fmt.Sprintf(", killed at the %v timeout", timeout+30*time.Second)
		}
		if cs != nil {
			why += fmt.Sprintf("; its %d MiB memory cgroup: no OOM kill, failcnt %d, peak usage %.0f MiB",
				cg.limit>>20, cs.Failcnt, float64(cs.Peak)/(1<<20))
		}
		b.Fatalf("%s: %v (%s)", what, err, why)
	}
	if cg != nil {
		if err := cg.add(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			b.Fatalf("moving the receiver into its cgroup %s: %v", cg.dir, err)
		}
	}
	dec := json.NewDecoder(stdout)
	var hello receiverPeer
	if err := dec.Decode(&hello); err != nil {
		failed("receiver", err)
	}
	bpeer, err := peer.Decode(hello.Peer)
	if err != nil {
		b.Fatal(err)
	}
	var baddrs []ma.Multiaddr
	for _, s := range hello.Addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			b.Fatal(err)
		}
		baddrs = append(baddrs, m)
	}
	if _, err := a.AddLibrary(context.Background(), lib, "bench", memberOf(a),
		node.Member{Device: hello.Device, Peer: bpeer, Name: "B", Addrs: baddrs}); err != nil {
		b.Fatal(err)
	}
	var addrs []string
	for _, m := range a.Host().Addrs() {
		addrs = append(addrs, m.String())
	}
	job := receiverJob{Library: lib, Sender: receiverPeer{Device: a.Device(), Peer: a.Host().ID().String(), Addrs: addrs},
		Records: n, LastID: last.id, LastVersion: last.v.String(), Timeout: timeout}
	if err := json.NewEncoder(stdin).Encode(job); err != nil {
		b.Fatal(err)
	}
	var res receiverResult
	if err := dec.Decode(&res); err != nil {
		failed("receiver result", err)
	}
	_ = stdin.Close()
	cs := oom()
	if res.Err != "" {
		b.Fatalf("receiver: %s", res.Err)
	}
	res.Cgroup = cs
	return res
}

// waitBounded waits for cmd's process to exit, killing it after d.
func waitBounded(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		return <-done
	}
}

// ---- 2. catch-up ----

// BenchmarkNodeCatchUp: node C holds a library of N device-owned records of
// A, is stopped, misses K writes on A (half updates of existing records,
// half inserts), and is restarted on the same store and identity (on a new
// port: it dials A, whose address it stored). Measured: the bytes C receives
// on streams (a byte counter on C's host, built here and given with
// node.WithHost) from its restart until it holds all K, and the time. Target:
// bytes on the node's protocol at most 2× the K records' size (payload +
// record ID + model type). BENCH_CATCHUP_RECORDS: default 200,000 (issue
// 1,000,000); BENCH_CATCHUP_MISSED: default 1,000 (issue 1,000).
func BenchmarkNodeCatchUp(b *testing.B) {
	n := envInt(b, "BENCH_CATCHUP_RECORDS", 200_000, 1000)
	k := envInt(b, "BENCH_CATCHUP_MISSED", 1000, 2)
	if k > n {
		b.Fatalf("BENCH_CATCHUP_MISSED (%d) must not exceed BENCH_CATCHUP_RECORDS (%d)", k, n)
	}
	writers := envInt(b, "BENCH_WRITERS", 32, 1)
	data := distinctPayloads(b, payloadSize)
	for it := 0; it < b.N; it++ {
		a := startNode(b, "A", b.TempDir(), false, nil)
		c := startNode(b, "C", b.TempDir(), true, nil)
		lib := uuid.New()
		join(b, lib, a, c)
		la := a.Library(lib)
		ids := newIDs(n)
		start := time.Now()
		ws, _ := writeMany(b, la, false, ids, data, writers)
		if err := waitVersion(c.Library(lib), ownedModel, ws[len(ws)-1].id, ws[len(ws)-1].v, time.Duration(n/1000+60)*time.Second); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("catch-up: setup: %d records written on A and synced to C in %v\n", n, time.Since(start).Round(time.Millisecond))

		c.close()
		missedIDs := append(append([]uuid.UUID(nil), ids[:k/2]...), newIDs(k-k/2)...) // updates, then inserts
		upd := distinctPayloads(b, payloadSize)
		mws, _ := writeMany(b, la, false, missedIDs, upd, 1)
		size := 0
		for range mws {
			size += payloadSize + 16 + len(ownedModel)
		}

		start = time.Now()
		c = startNode(b, "C", c.dir, true, c.key)
		started := time.Since(start) // opening the store, loading the engine
		lc := c.Library(lib)
		lastW := mws[len(mws)-1]
		if err := waitVersion(lc, ownedModel, lastW.id, lastW.v, 60*time.Second); err != nil {
			b.Fatal(err)
		}
		for left := missing(lc, ownedModel, mws); len(left) > 0; left = missing(lc, ownedModel, left) {
			if time.Since(start) > 60*time.Second {
				b.Fatalf("C lacks %d of the %d missed records after 60 s", len(left), k)
			}
			time.Sleep(5 * time.Millisecond)
		}
		elapsed := time.Since(start)
		protoIn, totalIn := c.counter.syncIn()
		c.close()
		a.close()

		ratio := float64(protoIn) / float64(size)
		b.ReportMetric(elapsed.Seconds(), "s")
		b.ReportMetric(started.Seconds(), "start-s")
		b.ReportMetric(float64(protoIn), "sync-bytes-in")
		b.ReportMetric(float64(totalIn), "all-bytes-in")
		b.ReportMetric(float64(size), "records-bytes")
		b.ReportMetric(ratio, "ratio")
		fmt.Printf("catch-up of %d missed records (%d updates, %d inserts) in a library of %d: %v from restart (Start took %v); C received %d bytes on %s, %d on all streams (identify etc.); the records are %d bytes (payload + ID + model type): ratio %.2f (target ≤ 2: %s), all streams %.2f\n",
			k, k/2, k-k/2, n, elapsed.Round(time.Millisecond), started.Round(time.Millisecond), protoIn, node.ProtocolID, totalIn, size, ratio, verdict(ratio <= 2), float64(totalIn)/float64(size))
	}
}

// ---- 3. live throughput ----

// BenchmarkNodeLiveThroughput writes M shared changes one at a time on A
// (PutShared in a loop; each returns once durable) while B is live, and
// measures A's write rate and the time until B has them all; first, A writes
// as many alone (in a library with no other member) for its bare write rate. Target: B has
// them all within 2 s of A's last write. Beside it: a raw Badger write of as
// many records, one transaction each. BENCH_LIVE_CHANGES: default and issue
// size 100,000.
func BenchmarkNodeLiveThroughput(b *testing.B) {
	m := envInt(b, "BENCH_LIVE_CHANGES", 100_000, 1000)
	data := cborPayload(b, payloadSize)
	for it := 0; it < b.N; it++ {
		a := startNode(b, "A", b.TempDir(), false, nil)
		bn := startNode(b, "B", b.TempDir(), false, nil)
		// A alone: as many writes in a library of A only.
		solo := uuid.New()
		join(b, solo, a)
		ls := a.Library(solo)
		start := time.Now()
		for _, id := range newIDs(m) {
			if _, err := ls.PutShared(context.Background(), sharedModel, id, data); err != nil {
				b.Fatal(err)
			}
		}
		alone := time.Since(start)

		lib := uuid.New()
		join(b, lib, a, bn)
		waitLive(b, lib, a, bn)
		ids := newIDs(m)
		ctx, cancel := context.WithCancel(context.Background())
		tr := track(b, ctx, bn.Library(lib), ids, nil)
		la := a.Library(lib)
		start = time.Now()
		for _, id := range ids {
			if _, err := la.PutShared(ctx, sharedModel, id, data); err != nil {
				b.Fatal(err)
			}
		}
		wrote := time.Since(start)
		lastAt, err := tr.wait(bn.Library(lib), sharedModel, ids, 120*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		all := lastAt.Sub(start)
		lag := all - wrote
		dropped := a.Metrics().Dropped
		cancel()
		a.close()
		bn.close()

		writeRate := float64(m) / wrote.Seconds()
		aloneRate := float64(m) / alone.Seconds()
		raw := rawBadgerSingleRate(b, m, data)
		b.ReportMetric(aloneRate, "A-alone-writes/s")
		b.ReportMetric(aloneRate/raw, "ratio-alone-badger")
		b.ReportMetric(wrote.Seconds(), "A-write-s")
		b.ReportMetric(writeRate, "A-writes/s")
		b.ReportMetric(raw, "badger-single-writes/s")
		b.ReportMetric(writeRate/raw, "ratio-badger")
		b.ReportMetric(all.Seconds(), "B-all-s")
		b.ReportMetric(lag.Seconds(), "B-lag-s")
		b.ReportMetric(float64(dropped), "dropped")
		fmt.Printf("live throughput, A alone (a library of its own, no peer): %d shared changes one at a time in %v, %.0f writes/s; raw Badger one txn per record %.0f/s, ratio %.2f\n",
			m, alone.Round(time.Millisecond), aloneRate, raw, aloneRate/raw)
		fmt.Printf("live throughput of %d shared changes written one at a time with B live: A wrote them in %v (%.0f writes/s; raw Badger one txn per record %.0f/s, ratio %.2f); B had them all %v after the first write, %v after A's last (target ≤ 2 s: %s); live pushes dropped on A: %d; events lost on B: %d\n",
			m, wrote.Round(time.Millisecond), writeRate, raw, writeRate/raw, all.Round(time.Millisecond), lag.Round(time.Millisecond), verdict(lag <= 2*time.Second), dropped, tr.lost())
	}
}

// ---- 4. latency ----

// BenchmarkNodeLatency runs a full mesh of 5 nodes; one writes shared changes
// at 1,000/s for 3 s, and every other node's subscriber notes when each
// arrives. Reported: p50 and p99 of the delay from just before PutShared is
// called to the event on each other node (and from PutShared's return).
// Target: p99 ≤ 20 ms. Beside it: the one-way delay of as many 256-byte
// messages at the same rate on one raw libp2p stream between two hosts.
// BENCH_LATENCY_NODES (5), BENCH_LATENCY_RATE (1000), BENCH_LATENCY_SECONDS (3);
// BENCH_LATENCY_PRELOAD (0) first writes that many shared changes in the
// same stream and syncs them everywhere (a big library's latency).
func BenchmarkNodeLatency(b *testing.B) {
	nn := envInt(b, "BENCH_LATENCY_NODES", 5, 2)
	rate := envInt(b, "BENCH_LATENCY_RATE", 1000, 1)
	secs := envInt(b, "BENCH_LATENCY_SECONDS", 3, 1)
	preload := envInt(b, "BENCH_LATENCY_PRELOAD", 0, 0)
	allWrite := envInt(b, "BENCH_LATENCY_ALL_WRITE", 0, 0) == 1
	data := cborPayload(b, payloadSize)
	// writer is the node that writes change i: every node in turn with
	// BENCH_LATENCY_ALL_WRITE=1, else the first.
	writer := func(i int) int {
		if allWrite {
			return i % nn
		}
		return 0
	}
	first := 1 // the first node that receives
	if allWrite {
		first = 0
	}
	count := rate * secs
	period := time.Second / time.Duration(rate)
	for it := 0; it < b.N; it++ {
		nodes, lib := startMesh(b, nn)
		if preload > 0 {
			ws, _ := writeMany(b, nodes[0].Library(lib), true, newIDs(preload), samePayload(data), 32)
			last := ws[len(ws)-1]
			for _, nd := range nodes[1:] {
				if err := waitVersion(nd.Library(lib), sharedModel, last.id, last.v, time.Duration(preload/1000+60)*time.Second); err != nil {
					b.Fatal(err)
				}
			}
			waitLive(b, lib, nodes...)
		}
		ids := newIDs(count)
		idx := make(map[uuid.UUID]int, count)
		for i, id := range ids {
			idx[id] = i
		}
		ctx, cancel := context.WithCancel(context.Background())
		var trs []*tracker
		for _, nd := range nodes[first:] {
			trs = append(trs, track(b, ctx, nd.Library(lib), ids, idx))
		}
		called := make([]time.Time, count)
		returned := make([]time.Time, count)
		start := time.Now()
		for i, id := range ids {
			if d := time.Until(start.Add(time.Duration(i) * period)); d > 0 {
				time.Sleep(d)
			}
			called[i] = time.Now()
			if _, err := nodes[writer(i)].Library(lib).PutShared(ctx, sharedModel, id, data); err != nil {
				b.Fatal(err)
			}
			returned[i] = time.Now()
		}
		achieved := float64(count) / time.Since(start).Seconds()
		var fromCall, fromReturn, putDur []time.Duration
		lost := 0
		for ti, tr := range trs {
			ni := first + ti
			tr.mu.Lock()
			for i := range ids {
				if writer(i) == ni {
					tr.mark(i, returned[i]) // its own writes: not counted below
				}
			}
			tr.mu.Unlock()
			if _, err := tr.wait(nodes[ni].Library(lib), sharedModel, ids, 30*time.Second); err != nil {
				b.Fatalf("%s: %v", nodes[ni].name, err)
			}
			tr.mu.Lock()
			lost += tr.missed
			for i, r := range tr.recv {
				if writer(i) == ni {
					continue
				}
				fromCall = append(fromCall, r.Sub(called[i]))
				fromReturn = append(fromReturn, r.Sub(returned[i]))
			}
			tr.mu.Unlock()
		}
		for i := range called {
			putDur = append(putDur, returned[i].Sub(called[i]))
		}
		cancel()
		for _, nd := range nodes {
			nd.close()
		}
		raw := rawStreamLatency(b, count, len(data), period)

		p50, p99, pmax := percentile(fromCall, 0.5), percentile(fromCall, 0.99), percentile(fromCall, 1)
		r50, r99 := percentile(fromReturn, 0.5), percentile(fromReturn, 0.99)
		raw50, raw99 := percentile(raw, 0.5), percentile(raw, 0.99)
		b.ReportMetric(ms(p50), "p50-ms")
		b.ReportMetric(ms(p99), "p99-ms")
		b.ReportMetric(ms(pmax), "max-ms")
		b.ReportMetric(ms(raw50), "raw-p50-ms")
		b.ReportMetric(ms(raw99), "raw-p99-ms")
		b.ReportMetric(float64(p99)/float64(raw99), "ratio-p99")
		b.ReportMetric(achieved, "writes/s")
		writers := "one node writes"
		if allWrite {
			writers = "every node writes in turn"
		}
		fmt.Printf("latency, %d-node full mesh, %s, %d shared changes (after %d preloaded) at %d/s (achieved %.0f/s) to %d nodes each: from before PutShared p50 %.2f ms, p99 %.2f ms (target ≤ 20 ms: %s), max %.2f ms; from PutShared's return p50 %.2f ms, p99 %.2f ms; PutShared itself p50 %.2f ms, p99 %.2f ms; events lost %d\n",
			nn, writers, count, preload, rate, achieved, nn-1, ms(p50), ms(p99), verdict(p99 <= 20*time.Millisecond), ms(pmax), ms(r50), ms(r99), ms(percentile(putDur, 0.5)), ms(percentile(putDur, 0.99)), lost)
		fmt.Printf("latency limit: raw libp2p stream, %d messages of %d bytes at %d/s, one way: p50 %.3f ms, p99 %.3f ms; node/raw ratio p50 %.1f, p99 %.1f\n",
			len(raw), len(data), rate, ms(raw50), ms(raw99), float64(p50)/float64(raw50), float64(p99)/float64(raw99))
	}
}

// ---- 5. wire bytes per change ----

// BenchmarkNodeWireBytes writes M shared changes of P-byte payloads on A and
// counts the bytes B receives on the node's protocol (a byte counter on B's
// host) until B has them all: (bytes - M*P)/M is the overhead per change.
// Target: ≤ 64 B in batches. Run batched (BENCH_WRITERS concurrent writers, so
// the node coalesces pushes into SharedChangeBatch) and one at a time (a single
// writer: mostly one SharedChange per frame). Heartbeats and Hello-free
// session traffic during the run are included. BENCH_WIRE_CHANGES (10,000),
// BENCH_WIRE_PAYLOAD (256).
func BenchmarkNodeWireBytes(b *testing.B) {
	m := envInt(b, "BENCH_WIRE_CHANGES", 10_000, 100)
	p := envInt(b, "BENCH_WIRE_PAYLOAD", 256, 1)
	writers := envInt(b, "BENCH_WRITERS", 32, 1)
	data := distinctPayloads(b, p)
	for it := 0; it < b.N; it++ {
		for _, mode := range []struct {
			name    string
			writers int
		}{{"batched", writers}, {"one-at-a-time", 1}} {
			a := startNode(b, "A", b.TempDir(), false, nil)
			bn := startNode(b, "B", b.TempDir(), true, nil)
			lib := uuid.New()
			join(b, lib, a, bn)
			waitLive(b, lib, a, bn)
			time.Sleep(200 * time.Millisecond) // let the Hello exchange and first acks pass
			ids := newIDs(m)
			ctx, cancel := context.WithCancel(context.Background())
			tr := track(b, ctx, bn.Library(lib), ids, nil)
			p0, t0 := bn.counter.syncIn()
			start := time.Now()
			writeMany(b, a.Library(lib), true, ids, data, mode.writers)
			if _, err := tr.wait(bn.Library(lib), sharedModel, ids, 60*time.Second); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			p1, t1 := bn.counter.syncIn()
			dropped := a.Metrics().Dropped
			cancel()
			a.close()
			bn.close()
			bytes, all := p1-p0, t1-t0
			over := float64(bytes-int64(m*p)) / float64(m)
			b.ReportMetric(float64(bytes)/float64(m), mode.name+"-bytes/change")
			b.ReportMetric(over, mode.name+"-overhead-B/change")
			target := ""
			if mode.name == "batched" {
				target = fmt.Sprintf(" (target ≤ 64 B: %s)", verdict(over <= 64))
			}
			fmt.Printf("wire bytes, %s (%d writers): %d shared changes of %d-byte payload in %v; B received %d bytes on %s (%d on all streams): %.1f bytes per change, %.1f beyond the payload%s, ratio to payload %.2f; pushes dropped %d, events lost %d\n",
				mode.name, mode.writers, m, p, elapsed.Round(time.Millisecond), bytes, node.ProtocolID, all, float64(bytes)/float64(m), over, target, float64(bytes)/float64(m*p), dropped, tr.lost())
		}
	}
}
