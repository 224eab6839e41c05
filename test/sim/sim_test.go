package sim

import (
	"flag"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

var (
	flagSeeds = flag.Int("sim.seeds", 2000, "number of random seeds TestSimSeeds runs")
	flagFirst = flag.Int64("sim.first", 1, "first seed of TestSimSeeds")
	flagSeed  = flag.Int64("sim.seed", 0, "replay only this seed, with a trace (see -sim.trace)")
	flagTrace = flag.Bool("sim.trace", false, "print the trace of the replayed seed")
)

// TestSimSeeds runs many seeded random runs and checks the invariants after
// each. A failure prints the seed; replay it with
//
//	go test ./test/sim -run TestSimSeeds -sim.seed=N -sim.trace
func TestSimSeeds(t *testing.T) {
	if *flagSeed != 0 {
		cfg := RandomConfig(*flagSeed)
		if *flagTrace {
			cfg.Trace = os.Stdout
		}
		s := New(cfg)
		if err := s.Run(); err != nil {
			t.Fatalf("config %+v: %v", cfg, err)
		}
		t.Logf("seed %d passed: %+v", *flagSeed, s.Stats)
		return
	}
	n := *flagSeeds
	if testing.Short() && n > 50 {
		// The quick set: a sample that crosses every message type in a few
		// seconds; the full run (CI) takes 2,000 seeds.
		n = 50
	}
	start := time.Now()
	var (
		mu       sync.Mutex
		failures []string
		total    Stats
		wg       sync.WaitGroup
	)
	seeds := make(chan int64)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range seeds {
				s := New(RandomConfig(seed))
				err := s.Run()
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				}
				total.add(s.Stats)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		mu.Lock()
		stop := len(failures) >= 5
		mu.Unlock()
		if stop {
			break
		}
		seeds <- *flagFirst + int64(i)
	}
	close(seeds)
	wg.Wait()
	for _, f := range failures {
		t.Errorf("%s\n  replay: go test ./test/sim -run TestSimSeeds -sim.seed=N -sim.trace", f)
	}
	t.Logf("%d seeds in %v: %+v", n, time.Since(start).Round(time.Millisecond), total)
	// Every message of the seed (and every addition) must have been produced
	// by one engine and consumed by another.
	if n >= 100 && len(failures) == 0 {
		for _, name := range []string{"StateChange", "StateBatch", "StateRequest", "StateResponse",
			"SharedChange", "SharedChangeBatch", "SharedChangeRequest", "SharedChangeResponse",
			"AckSharedChanges", "Hello", "Heartbeat", "Error"} {
			if total.Variants[name] == 0 {
				t.Errorf("no %s crossed the wire in %d seeds", name, n)
			}
		}
	}
}

func (s *Stats) add(o Stats) {
	s.Messages += o.Messages
	s.Bytes += o.Bytes
	s.Pages += o.Pages
	s.PageBytes += o.PageBytes
	s.Acked += o.Acked
	s.Unacked += o.Unacked
	s.Crashes += o.Crashes
	s.Parts += o.Parts
	s.Quarantined += o.Quarantined
	s.Released += o.Released
	s.Pruned += o.Pruned
	s.InvariantsChecked += o.InvariantsChecked
	if s.Variants == nil {
		s.Variants = make(map[string]int)
	}
	for k, v := range o.Variants {
		s.Variants[k] += v
	}
}
