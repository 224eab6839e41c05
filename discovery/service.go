package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Errors of the package.
var (
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("discovery: closed")
	// ErrNotStarted is returned by calls that need Start first.
	ErrNotStarted = errors.New("discovery: not started")
	// ErrDHTOff is returned by FindPeer when the DHT is off.
	ErrDHTOff = errors.New("discovery: the DHT is off")
)

// Names of the sources.
const (
	SourceMDNS = "mdns"
	SourceDHT  = "dht"
)

// Peer is a peer a source found, with the addresses it announced.
type Peer struct {
	ID    peer.ID
	Addrs []ma.Multiaddr
	// Source is the Name of the source that found it (SourceMDNS or
	// SourceDHT).
	Source string
	// Namespace is the DHT namespace it advertised; "" for mDNS.
	Namespace string
}

// AddrInfo returns the peer's ID and addresses.
func (p Peer) AddrInfo() peer.AddrInfo { return peer.AddrInfo{ID: p.ID, Addrs: p.Addrs} }

// Source finds peers. Start begins the search and returns at once; the
// source then calls found from its own goroutines, until Close returns (a
// call racing with Close may still arrive, so found must tolerate it). found
// must not block; Service's does not.
type Source interface {
	// Name is a short lower-case name ("mdns", "dht").
	Name() string
	// Start starts the search. ctx bounds the start only; the search runs
	// until Close.
	Start(ctx context.Context, found func(Peer)) error
	// Close stops every goroutine the source started and waits for them.
	Close() error
}

// reporter is a source that adds its own facts to its status.
type reporter interface {
	report(*SourceStatus)
}

// MaxRecent is the most peer IDs a SourceStatus lists in Recent.
const MaxRecent = 16

// SourceStatus says how one source is doing.
type SourceStatus struct {
	// Name is the source's name.
	Name string `json:"name"`
	// Enabled is whether the configuration turns it on.
	Enabled bool `json:"enabled"`
	// Running is whether it started and has not been closed.
	Running bool `json:"running"`
	// Found counts the peers it reported since Start, repeats within the
	// de-duplication window not counted.
	Found int `json:"found"`
	// Dropped counts peers it found that were dropped because the
	// consumer's queue was full.
	Dropped int `json:"dropped"`
	// Recent are the peers it reported last, newest first, each once, at
	// most MaxRecent.
	Recent []peer.ID `json:"recent,omitempty"`
	// RoutingTable is the number of peers in the DHT's routing table (DHT
	// only).
	RoutingTable int `json:"routing_table,omitempty"`
	// Namespaces is the number of namespaces advertised and looked up (DHT
	// only).
	Namespaces int `json:"namespaces,omitempty"`
	// LastError is the last thing that went wrong ("" if nothing), and
	// LastErrorAt when.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// maxSeen bounds the de-duplication table; past it, entries older than the
// window are swept, and if that is not enough the table starts over.
const maxSeen = 4096

// seen is the last report of one peer.
type seen struct {
	p   Peer
	key string // the peer's sorted addresses
	at  time.Time
}

type sourceState struct {
	src     Source
	enabled bool
	running bool
	found   int
	dropped int
	recent  []peer.ID
	err     string
	errAt   time.Time
}

// Service runs the sources a Config turns on and hands the peers they find
// to one consumer: found runs on a single goroutine of the service, one peer
// at a time, and may block (peers found meanwhile wait in a bounded queue;
// when it is full they are dropped and counted). The host itself and
// repeats of a peer with the same addresses within Config.DedupWindow are
// not reported. Its methods are safe for concurrent use.
type Service struct {
	h     host.Host
	cfg   Config
	found func(Peer)
	log   *slog.Logger
	now   func() time.Time // tests replace it

	mdns    *MDNS
	dht     *DHT
	sources []*sourceState

	queue chan Peer

	mu      sync.Mutex
	seen    map[peer.ID]seen
	started bool
	closed  bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks the configuration and prepares the sources it turns on on
// host h. It starts nothing. found receives every peer found (see Service);
// log may be nil (slog.Default()).
func New(h host.Host, cfg Config, found func(Peer), log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil || found == nil {
		return nil, errors.New("discovery: New needs a host and a found function")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Service{
		h: h, cfg: cfg, found: found, log: log, now: time.Now,
		queue: make(chan Peer, max(cfg.QueueSize, 1)),
		seen:  make(map[peer.ID]seen),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mdns = NewMDNS(h, cfg.MDNSServiceName)
	s.sources = append(s.sources, &sourceState{src: s.mdns, enabled: cfg.MDNS})
	if cfg.DHT {
		d, err := NewDHT(h, cfg, log.With("source", SourceDHT))
		if err != nil {
			return nil, err
		}
		s.dht = d
		s.sources = append(s.sources, &sourceState{src: d, enabled: true})
	} else {
		s.sources = append(s.sources, &sourceState{src: dhtName{}, enabled: false})
	}
	return s, nil
}

// dhtName stands for the DHT source in the status when it is off.
type dhtName struct{}

func (dhtName) Name() string                            { return SourceDHT }
func (dhtName) Start(context.Context, func(Peer)) error { return ErrDHTOff }
func (dhtName) Close() error                            { return nil }

// Start starts the consumer goroutine and every enabled source. A source
// that fails to start is logged and its error shown in its status; the
// others run all the same (a machine without a multicast interface can
// still use the DHT). Start returns an error only when called twice or
// after Close. ctx bounds the start only.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.started:
		s.mu.Unlock()
		return errors.New("discovery: already started")
	}
	s.started = true
	s.mu.Unlock()

	s.wg.Add(1)
	go s.drain()
	for _, st := range s.sources {
		if !st.enabled {
			continue
		}
		name := st.src.Name()
		err := st.src.Start(ctx, func(p Peer) { s.offer(st, p) })
		s.mu.Lock()
		if err != nil {
			st.err, st.errAt = err.Error(), s.now()
		} else {
			st.running = true
		}
		s.mu.Unlock()
		if err != nil {
			s.log.Warn("discovery source failed to start", "source", name, "err", err)
		} else {
			s.log.Info("discovery source started", "source", name)
		}
	}
	return nil
}

// Close stops every source and the consumer goroutine, and waits for them.
// found is not called after Close returns. It is safe to call more than
// once.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	var errs []error
	for i := len(s.sources) - 1; i >= 0; i-- {
		st := s.sources[i]
		if !st.enabled {
			continue
		}
		if err := st.src.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing %s: %w", st.src.Name(), err))
		}
		s.mu.Lock()
		st.running = false
		s.mu.Unlock()
	}
	s.cancel()
	s.wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("discovery: %w", errors.Join(errs...))
	}
	return nil
}

// SetNamespaces sets the DHT namespaces to advertise and look up (one per
// library: pairing.Rendezvous of its secret), replacing the previous set.
// It may be called before Start; without the DHT it does nothing.
func (s *Service) SetNamespaces(ns []string) {
	if s.dht != nil {
		s.dht.SetNamespaces(ns)
	}
}

// FindSoon asks the DHT to look every namespace up again at once (see
// DHT.FindSoon); without the DHT it does nothing.
func (s *Service) FindSoon() {
	if s.dht != nil {
		s.dht.FindSoon()
	}
}

// FindPeer looks a peer up in the DHT and returns its addresses.
func (s *Service) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if s.dht == nil {
		return peer.AddrInfo{}, ErrDHTOff
	}
	return s.dht.FindPeer(ctx, id)
}

// RoutingPeers returns up to max peers of the DHT's routing table with
// their addresses; none when the DHT is off.
func (s *Service) RoutingPeers(max int) []peer.AddrInfo {
	if s.dht == nil {
		return nil
	}
	return s.dht.RoutingPeers(max)
}

// Recent returns the last report of peer id by any source, if it came
// within the de-duplication window (whether or not the consumer kept it).
func (s *Service) Recent(id peer.ID) (Peer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.seen[id]
	if !ok || s.now().Sub(e.at) >= s.cfg.DedupWindow {
		return Peer{}, false
	}
	return e.p, true
}

// Status returns the status of each source, mDNS first, enabled or not.
func (s *Service) Status() []SourceStatus {
	s.mu.Lock()
	out := make([]SourceStatus, 0, len(s.sources))
	for _, st := range s.sources {
		out = append(out, SourceStatus{
			Name: st.src.Name(), Enabled: st.enabled, Running: st.running,
			Found: st.found, Dropped: st.dropped, Recent: slices.Clone(st.recent),
			LastError: st.err, LastErrorAt: st.errAt,
		})
	}
	s.mu.Unlock()
	for i, st := range s.sources {
		if r, ok := st.src.(reporter); ok && st.enabled {
			r.report(&out[i])
		}
	}
	return out
}

// offer takes a peer from a source: it drops the host itself, peers without
// addresses and repeats, and queues the rest without blocking.
func (s *Service) offer(st *sourceState, p Peer) {
	if p.ID == s.h.ID() || p.ID == "" || len(p.Addrs) == 0 {
		return
	}
	p.Addrs = slices.Clone(p.Addrs)
	key := addrKey(p.Addrs)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := s.now()
	if e, ok := s.seen[p.ID]; ok && e.key == key && now.Sub(e.at) < s.cfg.DedupWindow {
		return
	}
	select {
	case s.queue <- p:
	default:
		st.dropped++
		return
	}
	if len(s.seen) >= maxSeen {
		for id, e := range s.seen {
			if now.Sub(e.at) >= s.cfg.DedupWindow {
				delete(s.seen, id)
			}
		}
		if len(s.seen) >= maxSeen {
			s.seen = make(map[peer.ID]seen)
		}
	}
	s.seen[p.ID] = seen{p: p, key: key, at: now}
	st.found++
	st.recent = slices.DeleteFunc(st.recent, func(id peer.ID) bool { return id == p.ID })
	st.recent = slices.Insert(st.recent, 0, p.ID)
	if len(st.recent) > MaxRecent {
		st.recent = st.recent[:MaxRecent]
	}
}

// drain hands queued peers to the consumer, one at a time.
func (s *Service) drain() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case p := <-s.queue:
			if s.ctx.Err() != nil {
				return
			}
			s.found(p)
		}
	}
}

// addrKey is a set of addresses as one comparable string.
func addrKey(addrs []ma.Multiaddr) string {
	ss := make([]string, len(addrs))
	for i, a := range addrs {
		ss[i] = a.String()
	}
	slices.Sort(ss)
	ss = slices.Compact(ss)
	return strings.Join(ss, " ")
}
