package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/engine"
)

// Benchmarks of issue 16 (scale): how what a node sends and spends while
// idle grows with the devices of a library.

// envSizes reads a comma-separated list of sizes from the environment.
func envSizes(tb testing.TB, name string, def []int, least int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < least {
			tb.Fatalf("%s: %q is not a size of at least %d", name, f, least)
		}
		out = append(out, n)
	}
	return out
}

// productionTimers returns node.DefaultLocalConfig() (loopback, no
// discovery, no fsync) with the production configuration's timers: a tick
// every 200 ms, a heartbeat every 10 s, acknowledgements every second.
func productionTimers() node.Config {
	c, p := node.DefaultLocalConfig(), node.DefaultConfig()
	c.TickInterval, c.HeartbeatInterval, c.PeerTimeout = p.TickInterval, p.HeartbeatInterval, p.PeerTimeout
	c.AckInterval, c.PruneInterval, c.StreamTimeout = p.AckInterval, p.PruneInterval, p.StreamTimeout
	c.ReconnectMin, c.ReconnectMax = p.ReconnectMin, p.ReconnectMax
	return c
}

// BenchmarkNodeIdle runs libraries of N devices (BENCH_IDLE_NODES, a list,
// default 2,4; issue 16: 2,4,8,16), all nodes in this process, full mesh,
// with the production timers (productionTimers). Every device writes a
// record of each of the registry's model types but "device" (whose records
// are the members'), so that every node holds a watermark for every model
// type and origin: 7 model types × N origins, the most a Heartbeat of this
// library carries. Once every node holds every record and sees every peer
// live, it measures for BENCH_IDLE_SECONDS (default 21: two heartbeats a
// peer): the process's CPU per node in % of one core (target: ≤ 1% with 16
// sessions), and from node 0's counters the bytes of each Heartbeat it
// received and everything it received per second while idle. Then node 1
// restarts, and node 0 counts the bytes of the Hellos it receives from it,
// which carry node 1's watermarks.
//
//	BENCH_IDLE_NODES=2,4,8,16 go test ./test/bench -run '^$' -bench NodeIdle -benchtime 1x -timeout 30m
func BenchmarkNodeIdle(b *testing.B) {
	sizes := envSizes(b, "BENCH_IDLE_NODES", []int{2, 4}, 2)
	secs := envInt(b, "BENCH_IDLE_SECONDS", 21, 1)
	reg := engine.DefaultRegistry()
	for _, nn := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", nn), func(b *testing.B) {
			for b.Loop() {
				var nodes []*benchNode
				for i := 0; i < nn; i++ {
					// Node 1 has a host of its own (counted), so that it can
					// restart with its identity.
					nodes = append(nodes, startNodeWith(b, productionTimers(), fmt.Sprintf("n%d", i), b.TempDir(), i == 1, nil))
				}
				lib := uuid.New()
				join(b, lib, nodes...)
				waitLive(b, lib, nodes...)
				ctx := context.Background()
				type rec struct {
					model string
					id    uuid.UUID
				}
				var recs []rec
				data := cborPayload(b, payloadSize)
				for _, nd := range nodes {
					l := nd.Library(lib)
					for _, s := range []engine.Strategy{engine.DeviceOwned, engine.Shared} {
						for _, m := range reg.Ordered(s) {
							if m == "device" {
								continue
							}
							id := uuid.New()
							var err error
							if s == engine.Shared {
								_, err = l.PutShared(ctx, m, id, data)
							} else {
								_, err = l.PutOwned(ctx, m, id, data)
							}
							if err != nil {
								b.Fatal(err)
							}
							recs = append(recs, rec{m, id})
						}
					}
				}
				deadline := time.Now().Add(60 * time.Second)
				for _, nd := range nodes {
					for _, r := range recs {
						for {
							if _, err := nd.Library(lib).Get(ctx, r.model, r.id); err == nil {
								break
							}
							if time.Now().After(deadline) {
								b.Fatalf("%s lacks %s %s after 60 s", nd.name, r.model, r.id)
							}
							time.Sleep(20 * time.Millisecond)
						}
					}
				}
				waitLive(b, lib, nodes...)
				time.Sleep(2 * time.Second) // acknowledgements and pruning settle
				before := nodes[0].Metrics().Messages
				cpu0, t0 := cpuTime(), time.Now()
				time.Sleep(time.Duration(secs) * time.Second)
				cpu, elapsed := cpuTime()-cpu0, time.Since(t0)
				after := nodes[0].Metrics().Messages
				waitLive(b, lib, nodes...) // nobody timed out meanwhile
				// Node 1 restarts: its Hellos now carry its watermarks.
				helloKey := node.MessageKey{Type: "Hello", Direction: "in"}
				hello0 := nodes[0].Metrics().Messages[helloKey]
				nodes[1].close()
				nodes[1] = startNodeWith(b, productionTimers(), "n1", nodes[1].dir, true, nodes[1].key)
				waitLive(b, lib, nodes...)
				hello1 := nodes[0].Metrics().Messages[helloKey]
				for _, nd := range nodes {
					nd.close()
				}
				hello := node.MessageCount{Count: hello1.Count - hello0.Count, Bytes: hello1.Bytes - hello0.Bytes}
				perNode := 100 * cpu.Seconds() / elapsed.Seconds() / float64(nn)
				var idleIn uint64
				for k, c := range after {
					if k.Direction == "in" {
						idleIn += c.Bytes - before[k].Bytes
					}
				}
				hbKey := node.MessageKey{Type: "Heartbeat", Direction: "in"}
				hb := node.MessageCount{Count: after[hbKey].Count - before[hbKey].Count, Bytes: after[hbKey].Bytes - before[hbKey].Bytes}
				hbIdle := hb.Count
				per := func(c node.MessageCount) float64 {
					if c.Count == 0 {
						return 0
					}
					return float64(c.Bytes) / float64(c.Count)
				}
				fmt.Printf("idle, %d devices (%d sessions a node; up to 7 model types × %d origins of watermarks): CPU %.2f%% of a core per node (target ≤ 1%%: %s, %.2f of it); node 0 received %d heartbeats while idle, %.0f bytes each, %.0f bytes/s in all while idle\n",
					nn, nn-1, nn, perNode, verdict(perNode <= 1), perNode/1, hbIdle, per(hb), float64(idleIn)/elapsed.Seconds())
				fmt.Printf("  after node 1 restarted: node 0 received %d Hellos from it, %.0f bytes each\n", hello.Count, per(hello))
				b.ReportMetric(perNode, "cpu%/node")
				b.ReportMetric(per(hb), "B/heartbeat")
				b.ReportMetric(per(hello), "B/hello")
				b.ReportMetric(float64(idleIn)/elapsed.Seconds(), "idle-B/s")
			}
		})
	}
}
