package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/badgerstore"
)

// Benchmarks of two targets of issue 16 (16 devices in one library): a new
// device joining a library of N devices backfills from them
// (BenchmarkNodeJoinMany), and log pruning progresses while one member is
// silent (BenchmarkNodeSilentPruning). All nodes run in this process, full
// mesh on loopback TCP (127.0.0.1 only).

// deviceWrites is what one device wrote: its device-owned and its shared
// writes, each in the order of their versions.
type deviceWrites struct {
	owned, shared []written
}

// lastWrite is the last write of one kind of a device.
type lastWrite struct {
	model string
	w     written
}

// lasts returns the device's last write of each kind it wrote.
func (d deviceWrites) lasts() []lastWrite {
	var out []lastWrite
	if len(d.owned) > 0 {
		out = append(out, lastWrite{ownedModel, d.owned[len(d.owned)-1]})
	}
	if len(d.shared) > 0 {
		out = append(out, lastWrite{sharedModel, d.shared[len(d.shared)-1]})
	}
	return out
}

// writeAll has every node write perNode/2 device-owned (ownedModel) and
// perNode-perNode/2 shared (sharedModel) new records, all nodes at once, two
// writers a node (one of each kind). It returns each node's writes.
func writeAll(tb testing.TB, lib uuid.UUID, nodes []*benchNode, perNode int, data payloads) []deviceWrites {
	tb.Helper()
	out := make([]deviceWrites, len(nodes))
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(nodes))
	for i, nd := range nodes {
		for _, shared := range []bool{false, true} {
			cnt := perNode / 2
			if shared {
				cnt = perNode - perNode/2
			}
			wg.Add(1)
			go func(i int, l *node.Library, shared bool, cnt int) {
				defer wg.Done()
				ws := make([]written, 0, cnt)
				ctx := context.Background()
				for j := 0; j < cnt; j++ {
					id := uuid.New()
					var v hlc.HLC
					var err error
					if shared {
						v, err = l.PutShared(ctx, sharedModel, id, data(i*perNode+j))
					} else {
						v, err = l.PutOwned(ctx, ownedModel, id, data(i*perNode+j))
					}
					if err != nil {
						errs <- err
						return
					}
					ws = append(ws, written{id, v})
				}
				if shared {
					out[i].shared = ws
				} else {
					out[i].owned = ws
				}
			}(i, nd.Library(lib), shared, cnt)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return out
}

// waitHolds waits until l holds the last write of every device in ws
// (skipping the device at index self, -1 for none), each at its version or
// newer, or fails after timeout.
func waitHolds(tb testing.TB, l *node.Library, ws []deviceWrites, self int, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for i, w := range ws {
		if i == self {
			continue
		}
		for _, c := range w.lasts() {
			if err := waitVersion(l, c.model, c.w.id, c.w.v, time.Until(deadline)); err != nil {
				tb.Fatalf("device %d's writes: %v", i, err)
			}
		}
	}
}

// responses sums the catch-up response frames (StateResponse and
// SharedChangeResponse) of one direction in a node's counters.
func responses(m node.Metrics, dir string) node.MessageCount {
	var c node.MessageCount
	for _, t := range []string{"StateResponse", "SharedChangeResponse"} {
		x := m.Messages[node.MessageKey{Type: t, Direction: dir}]
		c.Count += x.Count
		c.Bytes += x.Bytes
	}
	return c
}

// servedMinBytes is the least response bytes a node must have sent to count
// as having served the joiner pages of records: more than end markers and
// empty pages (a page of 1,000 records of 256 bytes is about 300 kB).
const servedMinBytes = 16 << 10

// BenchmarkNodeJoinMany: a library of N devices (BENCH_JOIN_NODES, a list,
// default 16; e.g. 4,8,16 for a curve), all nodes in this process, full mesh
// on loopback TCP with node.DefaultLocalConfig(). Every device writes
// BENCH_JOIN_RECORDS records (default 2,000: half device-owned, half shared,
// 256-byte payloads of their own), all devices at once, and every node gets
// them all. Then a new, empty device joins: every member and the joiner list
// it as a member (AddLibrary with the N+1 members, as the other benchmarks
// add one), and it backfills. Measured: the time from the join until the
// joiner holds every record (its last-written record of each device at its
// version, then the counts of both model types through List; polled every
// 100 ms, bounded by a timeout), records/s, and which members served it
// pages of records (the catch-up response frames and bytes each member sent
// meanwhile, from its counters; the members were in sync before, so they
// served nobody else). Beside it, in the same run: a raw Badger WriteBatch
// of as many records, and a raw libp2p stream of their payload bytes.
//
//	BENCH_JOIN_NODES=4,8,16 go test ./test/bench -run '^$' -bench NodeJoinMany -benchtime 1x -timeout 30m
func BenchmarkNodeJoinMany(b *testing.B) {
	sizes := envSizes(b, "BENCH_JOIN_NODES", []int{16}, 1)
	per := envInt(b, "BENCH_JOIN_RECORDS", 2000, 2)
	data := distinctPayloads(b, payloadSize)
	for _, nn := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", nn), func(b *testing.B) {
			for b.Loop() {
				nodes, lib := startMesh(b, nn)
				start := time.Now()
				ws := writeAll(b, lib, nodes, per, data)
				wrote := time.Since(start)
				setupTimeout := time.Duration(nn*nn*per/2000+120) * time.Second
				for i, nd := range nodes {
					waitHolds(b, nd.Library(lib), ws, i, setupTimeout)
				}
				total := nn * per
				fmt.Printf("join of a %d-device library: %d records written (%d a device, half shared) in %v, every device holds all after %v\n",
					nn, total, per, wrote.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
				time.Sleep(2 * time.Second) // acknowledgements and pruning settle
				before := make([]node.Metrics, nn)
				for i, nd := range nodes {
					before[i] = nd.Metrics()
				}

				j := startNode(b, "joiner", b.TempDir(), true, nil)
				ms := []node.Member{memberOf(j)}
				for _, nd := range nodes {
					ms = append(ms, memberOf(nd))
				}
				ctx := context.Background()
				t0 := time.Now()
				for _, nd := range append(append([]*benchNode(nil), nodes...), j) {
					if _, err := nd.AddLibrary(ctx, lib, "bench", ms...); err != nil {
						b.Fatal(err)
					}
				}
				lj := j.Library(lib)
				timeout := time.Duration(total/1000+60) * time.Second
				serving := make(map[uuid.UUID]bool) // peers seen with a catch-up in flight
				maxAtOnce := 0
				var elapsed time.Duration
				for polls := 0; ; polls++ {
					if time.Since(t0) > timeout {
						owned, _ := countRecords(lj, ownedModel)
						shared, _ := countRecords(lj, sharedModel)
						b.Fatalf("joiner holds %d device-owned and %d shared of %d and %d records after %v", owned, shared, total/2, total-total/2, timeout)
					}
					at := time.Now()
					ps, err := lj.Peers(ctx)
					if err != nil {
						b.Fatal(err)
					}
					now := 0
					for _, p := range ps {
						if p.State == "catching up" {
							serving[p.Device] = true
							now++
						}
					}
					maxAtOnce = max(maxAtOnce, now)
					if holdsLast(lj, ws) {
						owned, err1 := countRecords(lj, ownedModel)
						shared, err2 := countRecords(lj, sharedModel)
						if err1 == nil && err2 == nil && owned == nn*(per/2) && shared == nn*(per-per/2) {
							elapsed = at.Sub(t0)
							break
						}
					}
					time.Sleep(100 * time.Millisecond)
				}
				protoIn, _ := j.counter.syncIn()
				jm := j.Metrics()
				var served []string
				servers := 0
				for i, nd := range nodes {
					a, c := responses(before[i], "out"), responses(nd.Metrics(), "out")
					d := node.MessageCount{Count: c.Count - a.Count, Bytes: c.Bytes - a.Bytes}
					if d.Bytes >= servedMinBytes {
						servers++
					}
					if d.Count > 0 {
						served = append(served, fmt.Sprintf("%s %d frames %.0f kB", nd.name, d.Count, float64(d.Bytes)/1e3))
					}
				}
				reqs := jm.Messages[node.MessageKey{Type: "StateRequest", Direction: "out"}].Count +
					jm.Messages[node.MessageKey{Type: "SharedChangeRequest", Direction: "out"}].Count
				in := responses(jm, "in")
				j.close()
				for _, nd := range nodes {
					nd.close()
				}

				rate := float64(total) / elapsed.Seconds()
				mbps := float64(total*payloadSize) / elapsed.Seconds() / 1e6
				badgerRate := rawBadgerRate(b, total, data)
				streamRate := rawStreamRate(b, total*payloadSize) / 1e6
				fmt.Printf("  a new device (device %d) holds all %d records %v after the join: %.0f records/s, %.1f MB/s of payload; raw Badger WriteBatch %.0f records/s, ratio %.2f; raw libp2p stream %.1f MB/s, ratio %.3f\n",
					nn+1, total, elapsed.Round(time.Millisecond), rate, mbps, badgerRate, rate/badgerRate, streamRate, mbps/streamRate)
				fmt.Printf("  members that served it pages of records (≥ %d kB of responses): %d of %d; at most %d catch-ups in flight at once (sampled every 100 ms); the joiner sent %d requests and received %d response frames (%.0f kB; %d bytes on the sync protocol in all)\n",
					servedMinBytes>>10, servers, nn, maxAtOnce, reqs, in.Count, float64(in.Bytes)/1e3, protoIn)
				fmt.Printf("  responses sent by each member meanwhile: %s\n", strings.Join(served, "; "))
				b.ReportMetric(elapsed.Seconds(), "s")
				b.ReportMetric(rate, "records/s")
				b.ReportMetric(badgerRate, "badger-records/s")
				b.ReportMetric(rate/badgerRate, "ratio-badger")
				b.ReportMetric(streamRate, "stream-MB/s")
				b.ReportMetric(mbps/streamRate, "ratio-stream")
				b.ReportMetric(float64(servers), "serving-members")
				b.ReportMetric(float64(len(serving)), "peers-seen-catching-up")
				b.ReportMetric(float64(reqs), "requests")
			}
		})
	}
}

// holdsLast reports whether l holds the last-written record of each kind of
// every device in ws at its version or newer.
func holdsLast(l *node.Library, ws []deviceWrites) bool {
	for _, w := range ws {
		for _, c := range w.lasts() {
			r, err := l.Get(context.Background(), c.model, c.w.id)
			if err != nil || r.Version.Less(c.w.v) {
				return false
			}
		}
	}
	return true
}

// storeNode is a started node over a Badger store opened here (given with
// node.WithStore), so that the benchmark reads the store's log count and
// prune points while the node runs.
type storeNode struct {
	*benchNode
	st *badgerstore.Store
}

// startStoreNode starts a node with cfg over a Badger store in a temporary
// directory, on a host built here (counted, with a fresh identity).
func startStoreNode(tb testing.TB, cfg node.Config, name string) *storeNode {
	tb.Helper()
	opts := badgerstore.DefaultOptions()
	opts.SyncWrites = false
	st, err := badgerstore.Open(tb.TempDir(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	bn := &benchNode{name: name, key: k, counter: newByteCounter()}
	bn.host = newHost(tb, k, bn.counter)
	nd, err := node.New(cfg, node.WithLogger(benchLogger(name)), node.WithHost(bn.host), node.WithStore(st))
	if err != nil {
		tb.Fatal(err)
	}
	if err := nd.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	bn.Node = nd
	return &storeNode{benchNode: bn, st: st}
}

// close closes the node, its host and its store.
func (sn *storeNode) close() {
	sn.benchNode.close()
	_ = sn.st.Close()
}

// logSample is one reading of a node's shared log.
type logSample struct {
	at      time.Duration // since the silent node closed
	entries int           // log entries the node keeps
	// least is the least log prune point of the live devices' shared
	// streams (zero while one of them has none); acked is the least, over
	// those streams, of the node's own watermark and the acknowledgements
	// it stored of the live members other than the origin: what the live
	// members (the node included) acknowledged, which the log may be
	// pruned to.
	least, acked hlc.HLC
}

// sampleLog reads, from st, lib's log count, the least log prune point of
// sharedModel's streams of the live origins, and the least of what the live
// members hold of those streams: self's (the node of st) watermarks and
// the others' acknowledgements as st stores them, each stream's origin
// left out.
func sampleLog(tb testing.TB, st store.Store, lib uuid.UUID, self uuid.UUID, live []uuid.UUID) logSample {
	tb.Helper()
	n, err := st.CountLog(lib)
	if err != nil {
		tb.Fatal(err)
	}
	pps, err := st.PrunePoints(lib)
	if err != nil {
		tb.Fatal(err)
	}
	acks, err := st.Acks(lib)
	if err != nil {
		tb.Fatal(err)
	}
	isLive := make(map[uuid.UUID]bool, len(live))
	for _, d := range live {
		isLive[d] = true
	}
	out := logSample{entries: n}
	by := make(map[uuid.UUID]hlc.HLC)
	for _, p := range pps {
		if p.ModelType == sharedModel {
			by[p.Origin] = p.Log
		}
	}
	for i, o := range live {
		if h := by[o]; i == 0 || h.Less(out.least) {
			out.least = h
		}
	}
	wms, err := st.Watermarks(lib)
	if err != nil {
		tb.Fatal(err)
	}
	type key struct{ origin, member uuid.UUID }
	acked := make(map[key]hlc.HLC)
	for _, a := range acks {
		if a.ModelType == sharedModel {
			acked[key{a.Origin, a.Member}] = a.HLC
		}
	}
	for _, w := range wms {
		if w.ModelType == sharedModel {
			acked[key{w.Origin, self}] = w.HLC // what the node itself holds
		}
	}
	first := true
	for _, o := range live {
		for _, m := range live {
			if m == o {
				continue
			}
			if h := acked[key{o, m}]; first || h.Less(out.acked) {
				out.acked, first = h, false
			}
		}
	}
	return out
}

// BenchmarkNodeSilentPruning: a library of N devices (BENCH_SILENT_NODES,
// default 16), all nodes in this process, full mesh on loopback TCP with
// node.DefaultLocalConfig() (prune every 1 s, acks every 100 ms) but the
// horizon of silent members (node.Config.Horizon) shortened from 30 days to
// BENCH_SILENT_HORIZON seconds (default 8), so that it passes within the
// run. Every device writes BENCH_SILENT_RECORDS shared records (default
// 200); once all hold all and node 0's log is pruned, the last node closes
// (it stays a member, silent) and the others go on updating their records
// at BENCH_SILENT_RATE changes per second in all (default 100: 16 nodes in
// one process on 2 cores keep up with about that many, see the latency
// benchmark) for the horizon and BENCH_SILENT_AFTER seconds more (default
// 12). Node 0's store is read every 250 ms: the entries of its log, the
// least log prune point of the live devices' shared streams, and the least
// of what the live members hold of them (node 0's watermarks, the others'
// acknowledgements as node 0 stored them). Reported: the log before the
// silence; its peak while the silent member holds pruning back; the time
// from the silence until every live device's stream is pruned past the
// moment of the silence, so beyond anything the silent member acknowledged
// (the rule of PROTOCOL.md §7.5: a member silent longer than the horizon no
// longer holds log pruning back); and from then until the writes stop, the
// most log entries, how far the prune point stayed behind what the live
// members acknowledged, and how far that lagged behind the writes.
//
//	BENCH_SILENT_NODES=16 go test ./test/bench -run '^$' -bench NodeSilentPruning -benchtime 1x -timeout 30m
func BenchmarkNodeSilentPruning(b *testing.B) {
	nn := envInt(b, "BENCH_SILENT_NODES", 16, 3)
	horizon := time.Duration(envInt(b, "BENCH_SILENT_HORIZON", 8, 1)) * time.Second
	per := envInt(b, "BENCH_SILENT_RECORDS", 200, 1)
	rate := envInt(b, "BENCH_SILENT_RATE", 100, 1)
	after := time.Duration(envInt(b, "BENCH_SILENT_AFTER", 12, 1)) * time.Second
	data := distinctPayloads(b, payloadSize)
	for b.Loop() {
		cfg := node.DefaultLocalConfig()
		cfg.Horizon = horizon
		var sns []*storeNode
		var nodes []*benchNode
		for i := 0; i < nn; i++ {
			sn := startStoreNode(b, cfg, fmt.Sprintf("n%d", i))
			sns, nodes = append(sns, sn), append(nodes, sn.benchNode)
		}
		lib := uuid.New()
		join(b, lib, nodes...)
		waitLive(b, lib, nodes...)
		ctx := context.Background()

		// Every device writes per shared records, all at once.
		ids := make([][]uuid.UUID, nn)
		var ws []deviceWrites
		{
			var wg sync.WaitGroup
			errs := make(chan error, nn)
			ws = make([]deviceWrites, nn)
			for i, nd := range nodes {
				ids[i] = newIDs(per)
				wg.Add(1)
				go func(i int, l *node.Library) {
					defer wg.Done()
					for k, id := range ids[i] {
						v, err := l.PutShared(ctx, sharedModel, id, data(i*per+k))
						if err != nil {
							errs <- err
							return
						}
						ws[i].shared = append(ws[i].shared, written{id, v})
					}
				}(i, nd.Library(lib))
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
		}
		for i, nd := range nodes {
			waitHolds(b, nd.Library(lib), ws, i, 120*time.Second)
		}
		live := nodes[:nn-1]
		silent := sns[nn-1]
		var origins []uuid.UUID
		for _, nd := range live {
			origins = append(origins, nd.Device())
		}
		// The log is pruned once every member acknowledged (bounded wait).
		st0 := sns[0].st
		var logBefore int
		for deadline := time.Now().Add(20 * time.Second); ; {
			n := sampleLog(b, st0, lib, nodes[0].Device(), origins).entries
			logBefore = n
			if n == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}

		// The last node goes silent; the others go on writing.
		silent.close()
		t0 := time.Now()
		silenceHLC := hlc.HLC{Timestamp: uint64(t0.UnixMilli())}
		stop := make(chan struct{})
		errs := make(chan error, len(live))
		var wg sync.WaitGroup
		counts := make([]int, len(live))
		for i, nd := range live {
			wg.Add(1)
			// Each live device writes rate/len(live) changes a second,
			// updating its records in turn, each write once the last
			// returned (a late write goes at once: no burst beyond that).
			go func(i int, l *node.Library) {
				defer wg.Done()
				period := time.Second * time.Duration(len(live)) / time.Duration(rate)
				for k := 0; ; k++ {
					if d := time.Until(t0.Add(time.Duration(k) * period)); d > 0 {
						select {
						case <-stop:
							return
						case <-time.After(d):
						}
					}
					select {
					case <-stop:
						return
					default:
					}
					if _, err := l.PutShared(ctx, sharedModel, ids[i][k%per], data(nn*per+k*len(live)+i)); err != nil {
						errs <- err
						return
					}
					counts[i] = k + 1
				}
			}(i, nd.Library(lib))
		}
		var samples []logSample
		end := t0.Add(horizon + after)
		for time.Now().Before(end) {
			at := time.Since(t0)
			sm := sampleLog(b, st0, lib, nodes[0].Device(), origins)
			sm.at = at
			samples = append(samples, sm)
			time.Sleep(250 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		select {
		case err := <-errs:
			b.Fatal(err)
		default:
		}
		writeSecs := time.Since(t0).Seconds()
		writes := 0
		for _, c := range counts {
			writes += c
		}
		st, err := live[0].Library(lib).Status(ctx)
		if err != nil {
			b.Fatal(err)
		}
		peers := st.Peers
		sort.Slice(peers, func(i, j int) bool { return peers[i].State < peers[j].State })
		states := make(map[string]int)
		for _, p := range peers {
			states[p.State]++
		}
		for _, sn := range sns[:nn-1] {
			sn.close()
		}

		// Reading the samples: when the least prune point passed the
		// silence; from then on, the most entries the log held, how far
		// the prune point stayed behind what the live members acknowledged
		// (the rule allows no further), and how far that lagged behind the
		// time of the sample (the live members' own lag, which holds the
		// log as long as it lasts).
		lag := func(sm logSample, h hlc.HLC) float64 {
			if h.IsZero() {
				return -1
			}
			return t0.Add(sm.at).Sub(h.Time()).Seconds()
		}
		peak, pruned, afterMax, last := 0, time.Duration(-1), 0, 0
		var gaps, ackLags []float64
		for _, sm := range samples {
			if pruned < 0 && silenceHLC.Less(sm.least) {
				pruned = sm.at
			}
			if pruned < 0 {
				peak = max(peak, sm.entries)
			}
			if pruned >= 0 && sm.at >= pruned+cfg.PruneInterval {
				// From one prune interval on: the pruner deletes the
				// entries after the prune point moved.
				afterMax = max(afterMax, sm.entries)
				gaps = append(gaps, sm.acked.Time().Sub(sm.least.Time()).Seconds())
				ackLags = append(ackLags, lag(sm, sm.acked))
			}
			last = sm.entries
		}
		var series []string
		for k, sm := range samples {
			if k%4 == 0 {
				series = append(series, fmt.Sprintf("%.0fs:%d(p%.1f,a%.1f)", sm.at.Seconds(), sm.entries, lag(sm, sm.least), lag(sm, sm.acked)))
			}
		}
		maxOf := func(xs []float64) float64 {
			m := 0.0
			for _, x := range xs {
				m = max(m, x)
			}
			return m
		}
		achieved := float64(writes) / writeSecs
		fmt.Printf("silent pruning, %d devices, horizon shortened to %v (production: 30 days), %d shared records a device: node 0's log holds %d entries with every member live\n",
			nn, horizon, per, logBefore)
		fmt.Printf("  device %d closed (still a member); %d devices wrote %d changes in %.1f s (%.0f/s)\n", nn, nn-1, writes, writeSecs, achieved)
		fmt.Printf("  node 0's log, every second from the silence: entries(p: prune point's lag behind now, a: live members' least ack's lag, s): %s\n", strings.Join(series, " "))
		if pruned < 0 {
			fmt.Printf("  NOT pruned past the silence within %v: the least log prune point of the live devices' streams stayed at or below the moment device %d closed (last: %v); log peak %d, %d at the end\n",
				horizon+after, nn, samples[len(samples)-1].least, peak, last)
		} else {
			fmt.Printf("  every live device's stream pruned past the silence %v after it (horizon %v, prune interval %v); log peak %d entries until then, at most %d from %v later on while the writes went on, %d at the end (about %.1f s of writes); prune point at most %.2f s behind what the live members acknowledged, which lagged up to %.2f s behind the writes\n",
				pruned.Round(10*time.Millisecond), horizon, cfg.PruneInterval, peak, afterMax, cfg.PruneInterval, last, float64(last)/achieved, maxOf(gaps), maxOf(ackLags))
		}
		fmt.Printf("  node 0's peers at the end: %v\n", states)
		b.ReportMetric(float64(logBefore), "log-before")
		b.ReportMetric(float64(peak), "log-peak-held")
		if pruned >= 0 {
			b.ReportMetric(pruned.Seconds(), "s-to-prune-point")
			b.ReportMetric(maxOf(gaps), "max-s-prune-behind-acks")
			b.ReportMetric(maxOf(ackLags), "max-s-acks-behind")
		} else {
			b.ReportMetric(-1, "s-to-prune-point")
		}
		b.ReportMetric(float64(afterMax), "log-max-after")
		b.ReportMetric(float64(last), "log-end")
		b.ReportMetric(achieved, "writes/s")
	}
}
