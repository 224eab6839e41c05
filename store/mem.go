package store

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
)

// Mem is an in-memory Store with the semantics of the Badger store in
// store/badgerstore: the same validation, all-or-nothing batches, the same
// orderings, and no aliasing between the caller's slices and stored ones
// (Apply copies what it stores, reads copy what they return). It keeps
// nothing across a restart: a simulated crash keeps the *Mem itself.
//
// Mem is safe for concurrent use; one mutex serialises every call. Point
// reads and writes cost O(log n) plus the copies; the ordered indexes (IDs per
// model type, versions and log entries per stream) are chunked sorted slices,
// so a page read costs O(log n + page).
type Mem struct {
	mu     sync.Mutex
	closed bool

	libs      map[uuid.UUID]*memLibrary // per-library data, by library ID
	clock     uint64
	libraries map[uuid.UUID]Library
	meta      map[string][]byte
}

var (
	_ Store         = (*Mem)(nil)
	_ RecordCounter = (*Mem)(nil)
	_ RecordTallier = (*Mem)(nil)
)

// memLibrary holds everything of one library.
type memLibrary struct {
	models     map[string]*memModel // records by model type
	streams    map[streamKey]*memStream
	acks       map[ackKey]hlc.HLC
	quarantine map[QuarantineKey][]byte
	members    map[uuid.UUID]Member
}

// streamKey is a Stream within one library.
type streamKey struct {
	model  string
	origin uuid.UUID
}

type ackKey struct {
	streamKey
	member uuid.UUID
}

// memModel holds the records of one (library, model type).
type memModel struct {
	byID map[uuid.UUID]*Record // stored copies; never handed out
	ids  chunked[uuid.UUID]    // the keys of byID, in byte order
}

// memStream holds what Mem keeps per stream.
type memStream struct {
	index        chunked[indexEntry] // records of the stream, in (version, ID) order
	log          chunked[*LogEntry]  // stored copies, in HLC order
	watermark    hlc.HLC
	hasWatermark bool
	prune        PrunePoint
	hasPrune     bool
}

func (s *memStream) empty() bool {
	return s.index.len() == 0 && s.log.len() == 0 && !s.hasWatermark && !s.hasPrune
}

type indexEntry struct {
	version hlc.HLC
	id      uuid.UUID
}

func compareIndex(a, b indexEntry) int {
	if c := a.version.Compare(b.version); c != 0 {
		return c
	}
	return bytes.Compare(a.id[:], b.id[:])
}

func compareUUID(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

func compareLog(a, b *LogEntry) int { return a.HLC.Compare(b.HLC) }

// NewMem returns an empty Mem.
func NewMem() *Mem {
	return &Mem{
		libs:      make(map[uuid.UUID]*memLibrary),
		libraries: make(map[uuid.UUID]Library),
		meta:      make(map[string][]byte),
	}
}

// clone returns a copy of b, or nil when b is empty.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

func (m *Mem) lib(id uuid.UUID, create bool) *memLibrary {
	l := m.libs[id]
	if l == nil && create {
		l = &memLibrary{
			models:     make(map[string]*memModel),
			streams:    make(map[streamKey]*memStream),
			acks:       make(map[ackKey]hlc.HLC),
			quarantine: make(map[QuarantineKey][]byte),
			members:    make(map[uuid.UUID]Member),
		}
		m.libs[id] = l
	}
	return l
}

func (l *memLibrary) model(name string, create bool) *memModel {
	md := l.models[name]
	if md == nil && create {
		md = &memModel{byID: make(map[uuid.UUID]*Record), ids: chunked[uuid.UUID]{cmp: compareUUID}}
		l.models[name] = md
	}
	return md
}

func (l *memLibrary) stream(k streamKey, create bool) *memStream {
	s := l.streams[k]
	if s == nil && create {
		s = &memStream{
			index: chunked[indexEntry]{cmp: compareIndex},
			log:   chunked[*LogEntry]{cmp: compareLog},
		}
		l.streams[k] = s
	}
	return s
}

// tidy forgets a stream that holds nothing any more.
func (l *memLibrary) tidy(k streamKey) {
	if s := l.streams[k]; s != nil && s.empty() {
		delete(l.streams, k)
	}
}

// Apply validates b and then applies it whole; see Batch. On Mem the
// PruneLog, PurgeTombstones and PurgeLibraries deletions run under the same
// lock, so they too are atomic with the rest.
func (m *Mem) Apply(b *Batch) error {
	if err := b.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if err := m.checkReplaced(b); err != nil {
		return err
	}
	// Nothing below can fail: validation covered every rule.
	for i := range b.PutRecords {
		m.putRecord(&b.PutRecords[i])
	}
	for _, k := range b.DropRecords {
		m.dropRecord(k)
	}
	for i := range b.AppendLog {
		e := b.AppendLog[i]
		e.Data = clone(e.Data)
		l := m.lib(e.Library, true)
		l.stream(streamKey{e.ModelType, e.HLC.DeviceID}, true).log.insert(&e)
	}
	for _, w := range b.SetWatermarks {
		s := m.lib(w.Library, true).stream(streamKey{w.ModelType, w.Origin}, true)
		s.watermark, s.hasWatermark = w.HLC, true
	}
	for _, a := range b.SetAcks {
		m.lib(a.Library, true).acks[ackKey{streamKey{a.ModelType, a.Origin}, a.Member}] = a.HLC
	}
	for _, p := range b.SetPrunePoints {
		s := m.lib(p.Library, true).stream(streamKey{p.ModelType, p.Origin}, true)
		s.prune, s.hasPrune = p, true
	}
	for _, q := range b.PutQuarantine {
		m.lib(q.Library, true).quarantine[q.Key()] = clone(q.Message)
	}
	for _, k := range b.DropQuarantine {
		if l := m.lib(k.Library, false); l != nil {
			delete(l.quarantine, k)
		}
	}
	if b.ClockBound > m.clock {
		m.clock = b.ClockBound
	}
	for _, lib := range b.PutLibraries {
		lib.Secret = clone(lib.Secret)
		m.libraries[lib.ID] = lib
	}
	for _, mb := range b.PutMembers {
		m.lib(mb.Library, true).members[mb.DeviceID] = mb
	}
	for _, k := range b.DropMembers {
		if l := m.lib(k.Library, false); l != nil {
			delete(l.members, k.DeviceID)
		}
	}
	for _, id := range b.DropLibraries {
		delete(m.libraries, id)
		if l := m.lib(id, false); l != nil {
			clear(l.members)
		}
	}
	for k, v := range b.PutMeta {
		m.meta[k] = clone(v)
	}
	for _, k := range b.DropMeta {
		delete(m.meta, k)
	}
	for _, mk := range b.PruneLog {
		m.pruneLog(mk)
	}
	for _, mk := range b.PurgeTombstones {
		m.purgeTombstones(mk)
	}
	for _, id := range b.PurgeLibraries {
		m.purgeLibrary(id)
	}
	return nil
}

// purgeLibrary forgets every per-library value of a library except its
// members (which are configuration: see Batch.DropLibraries).
func (m *Mem) purgeLibrary(id uuid.UUID) {
	l := m.lib(id, false)
	if l == nil {
		return
	}
	members := l.members
	delete(m.libs, id)
	if len(members) > 0 {
		m.lib(id, true).members = members
	}
}

// checkReplaced fails with ErrInvalid unless every version of b.Replaced is
// that of the record its put replaces.
func (m *Mem) checkReplaced(b *Batch) error {
	if b.Replaced == nil {
		return nil
	}
	earlier := make(map[RecordKey]hlc.HLC)
	for i, r := range b.PutRecords {
		k := RecordKey{Library: r.Library, ModelType: r.ModelType, ID: r.ID}
		cur, ok := earlier[k]
		if !ok {
			if l := m.lib(k.Library, false); l != nil {
				if md := l.model(k.ModelType, false); md != nil && md.byID[k.ID] != nil {
					cur = md.byID[k.ID].Version
				}
			}
		}
		if b.Replaced[i] != cur {
			return fmt.Errorf("%w: Replaced[%d] is %s, the record %s/%s is at %s", ErrInvalid, i, b.Replaced[i], k.ModelType, k.ID, cur)
		}
		earlier[k] = r.Version
	}
	return nil
}

func (m *Mem) putRecord(r *Record) {
	l := m.lib(r.Library, true)
	md := l.model(r.ModelType, true)
	stored := &Record{
		Library: r.Library, ModelType: r.ModelType, ID: r.ID,
		Version: r.Version, Deleted: r.Deleted, Data: clone(r.Data),
	}
	if old := md.byID[r.ID]; old != nil {
		ok := streamKey{r.ModelType, old.Version.DeviceID}
		l.streams[ok].index.remove(indexEntry{old.Version, r.ID})
		l.tidy(ok)
	} else {
		md.ids.insert(r.ID)
	}
	md.byID[r.ID] = stored
	l.stream(streamKey{r.ModelType, r.Version.DeviceID}, true).index.insert(indexEntry{r.Version, r.ID})
}

func (m *Mem) dropRecord(k RecordKey) {
	l := m.lib(k.Library, false)
	if l == nil {
		return
	}
	md := l.model(k.ModelType, false)
	if md == nil {
		return
	}
	old := md.byID[k.ID]
	if old == nil {
		return
	}
	sk := streamKey{k.ModelType, old.Version.DeviceID}
	l.streams[sk].index.remove(indexEntry{old.Version, k.ID})
	l.tidy(sk)
	delete(md.byID, k.ID)
	md.ids.remove(k.ID)
	if len(md.byID) == 0 {
		delete(l.models, k.ModelType)
	}
}

func (m *Mem) pruneLog(mk Mark) {
	l := m.lib(mk.Library, false)
	if l == nil {
		return
	}
	sk := streamKey{mk.ModelType, mk.Origin}
	s := l.streams[sk]
	if s == nil {
		return
	}
	s.log.removePrefix(func(e *LogEntry) bool { return e.HLC.Compare(mk.HLC) > 0 })
	l.tidy(sk)
}

func (m *Mem) purgeTombstones(mk Mark) {
	l := m.lib(mk.Library, false)
	if l == nil {
		return
	}
	s := l.streams[streamKey{mk.ModelType, mk.Origin}]
	md := l.model(mk.ModelType, false)
	if s == nil || md == nil {
		return
	}
	var drop []uuid.UUID
	s.index.ascend(func(indexEntry) bool { return true }, func(e indexEntry) bool {
		if e.version.Compare(mk.HLC) > 0 {
			return false
		}
		if md.byID[e.id].Deleted {
			drop = append(drop, e.id)
		}
		return true
	})
	for _, id := range drop {
		m.dropRecord(RecordKey{mk.Library, mk.ModelType, id})
	}
}

// Close marks m closed; every later call returns ErrClosed. Closing twice is
// fine.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.libs, m.libraries, m.meta = nil, nil, nil
	return nil
}

// read takes the lock for a read and reports ErrClosed.
func (m *Mem) read() (unlock func(), err error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	return m.mu.Unlock, nil
}

func copyRecord(r *Record) Record {
	c := *r
	c.Data = clone(r.Data)
	return c
}

func validateLimit(limit int) error {
	if limit <= 0 {
		return errInvalidLimit(limit)
	}
	return nil
}

// Record implements Reader.
func (m *Mem) Record(k RecordKey) (Record, error) {
	if err := k.Validate(); err != nil {
		return Record{}, err
	}
	unlock, err := m.read()
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	if l := m.lib(k.Library, false); l != nil {
		if md := l.model(k.ModelType, false); md != nil {
			if r := md.byID[k.ID]; r != nil {
				return copyRecord(r), nil
			}
		}
	}
	return Record{}, ErrNotFound
}

// List implements Reader.
func (m *Mem) List(library uuid.UUID, modelType string, after uuid.UUID, limit int) ([]Record, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	if err := ValidateModelType(modelType); err != nil {
		return nil, err
	}
	if err := validateLimit(limit); err != nil {
		return nil, err
	}
	unlock, err := m.read()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []Record
	l := m.lib(library, false)
	if l == nil {
		return nil, nil
	}
	md := l.model(modelType, false)
	if md == nil {
		return nil, nil
	}
	md.ids.ascend(func(id uuid.UUID) bool { return compareUUID(id, after) > 0 }, func(id uuid.UUID) bool {
		out = append(out, copyRecord(md.byID[id]))
		return len(out) < limit
	})
	return out, nil
}

// streamOf returns the stream s of m, or nil.
func (m *Mem) streamOf(s Stream) *memStream {
	if l := m.lib(s.Library, false); l != nil {
		return l.streams[streamKey{s.ModelType, s.Origin}]
	}
	return nil
}

func (ms *memStream) marks(s Stream) (hlc.HLC, PrunePoint) {
	p := PrunePoint{Stream: s}
	if ms == nil {
		return hlc.HLC{}, p
	}
	if ms.hasPrune {
		p = ms.prune
	}
	return ms.watermark, p
}

// StatePage implements Reader.
func (m *Mem) StatePage(s Stream, after hlc.HLC, limit int) (StatePage, error) {
	if err := s.Validate(); err != nil {
		return StatePage{}, err
	}
	if err := validateLimit(limit); err != nil {
		return StatePage{}, err
	}
	unlock, err := m.read()
	if err != nil {
		return StatePage{}, err
	}
	defer unlock()
	ms := m.streamOf(s)
	var page StatePage
	page.Watermark, page.PrunePoint = ms.marks(s)
	if ms == nil {
		return page, nil
	}
	md := m.lib(s.Library, false).model(s.ModelType, false)
	ms.index.ascend(func(e indexEntry) bool { return e.version.Compare(after) > 0 }, func(e indexEntry) bool {
		page.Records = append(page.Records, copyRecord(md.byID[e.id]))
		return len(page.Records) < limit
	})
	return page, nil
}

// LogPage implements Reader.
func (m *Mem) LogPage(s Stream, after hlc.HLC, limit int) (LogPage, error) {
	if err := s.Validate(); err != nil {
		return LogPage{}, err
	}
	if err := validateLimit(limit); err != nil {
		return LogPage{}, err
	}
	unlock, err := m.read()
	if err != nil {
		return LogPage{}, err
	}
	defer unlock()
	ms := m.streamOf(s)
	var page LogPage
	page.Watermark, page.PrunePoint = ms.marks(s)
	if ms == nil {
		return page, nil
	}
	ms.log.ascend(func(e *LogEntry) bool { return e.HLC.Compare(after) > 0 }, func(e *LogEntry) bool {
		c := *e
		c.Data = clone(e.Data)
		page.Entries = append(page.Entries, c)
		return len(page.Entries) < limit
	})
	return page, nil
}

func compareStreamKey(a, b streamKey) int {
	if c := cmp.Compare(a.model, b.model); c != 0 {
		return c
	}
	return compareUUID(a.origin, b.origin)
}

// Streams implements Reader.
func (m *Mem) Streams(library uuid.UUID) ([]Stream, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	unlock, err := m.read()
	if err != nil {
		return nil, err
	}
	defer unlock()
	l := m.lib(library, false)
	if l == nil {
		return nil, nil
	}
	keys := make([]streamKey, 0, len(l.streams))
	for k, s := range l.streams {
		if !s.empty() {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareStreamKey)
	var out []Stream
	for _, k := range keys {
		out = append(out, Stream{Library: library, ModelType: k.model, Origin: k.origin})
	}
	return out, nil
}

// Watermark implements Reader.
func (m *Mem) Watermark(s Stream) (hlc.HLC, error) {
	if err := s.Validate(); err != nil {
		return hlc.HLC{}, err
	}
	unlock, err := m.read()
	if err != nil {
		return hlc.HLC{}, err
	}
	defer unlock()
	w, _ := m.streamOf(s).marks(s)
	return w, nil
}

// sortedStreams returns the streams of l that pass keep, in order.
func (l *memLibrary) sortedStreams(keep func(*memStream) bool) []streamKey {
	var keys []streamKey
	for k, s := range l.streams {
		if keep(s) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareStreamKey)
	return keys
}

// Watermarks implements Reader.
func (m *Mem) Watermarks(library uuid.UUID) ([]Mark, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	unlock, err := m.read()
	if err != nil {
		return nil, err
	}
	defer unlock()
	l := m.lib(library, false)
	if l == nil {
		return nil, nil
	}
	var out []Mark
	for _, k := range l.sortedStreams(func(s *memStream) bool { return s.hasWatermark }) {
		out = append(out, Mark{Stream: Stream{library, k.model, k.origin}, HLC: l.streams[k].watermark})
	}
	return out, nil
}

// Acks implements Reader.
func (m *Mem) Acks(library uuid.UUID) ([]Ack, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	unlock, err := m.read()
	if err != nil {
		return nil, err
	}
	defer unlock()
	l := m.lib(library, false)
	if l == nil {
		return nil, nil
	}
	keys := make([]ackKey, 0, len(l.acks))
	for k := range l.acks {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ackKey) int {
		if c := compareStreamKey(a.streamKey, b.streamKey); c != 0 {
			return c
		}
		return compareUUID(a.member, b.member)
	})
	var out []Ack
	for _, k := range keys {
		out = append(out, Ack{Stream: Stream{library, k.model, k.origin}, Member: k.member, HLC: l.acks[k]})
	}
	return out, nil
}

// PrunePoints implements Reader.
func (m *Mem) PrunePoints(library uuid.UUID) ([]PrunePoint, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	unlock, err := m.read()
	if err != nil {
		return nil, err
	}
	defer unlock()
	l := m.lib(library, false)
	if l == nil {
		return nil, nil
	}
	var out []PrunePoint
	for _, k := range l.sortedStreams(func(s *memStream) bool { return s.hasPrune }) {
		out = append(out, l.streams[k].prune)
	}
	return out, nil
}

func compareQuarantineKey(a, b QuarantineKey) int {
	if c := a.HLC.Compare(b.HLC); c != 0 {
		return c
	}
	return compareUUID(a.From, b.From)
}

// Quarantined implements Reader.
func (m *Mem) Quarantined(library uuid.UUID, limit int) ([]Quarantined, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	if err := validateLimit(limit); err != nil {
		return nil, err
	}
	unlock, err := m.read()
	if err != nil {
		return nil, err
	}
	defer unlock()
	l := m.lib(library, false)
	if l == nil {
		return nil, nil
	}
	keys := make([]QuarantineKey, 0, len(l.quarantine))
	for k := range l.quarantine {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareQuarantineKey)
	var out []Quarantined
	for _, k := range keys[:min(limit, len(keys))] {
		out = append(out, Quarantined{Library: library, HLC: k.HLC, From: k.From, Message: clone(l.quarantine[k])})
	}
	return out, nil
}

// CountLog implements Reader.
func (m *Mem) CountLog(library uuid.UUID) (int, error) {
	if err := validateLibrary(library); err != nil {
		return 0, err
	}
	unlock, err := m.read()
	if err != nil {
		return 0, err
	}
	defer unlock()
	n := 0
	if l := m.lib(library, false); l != nil {
		for _, s := range l.streams {
			n += s.log.len()
		}
	}
	return n, nil
}

// CountRecords implements RecordCounter.
func (m *Mem) CountRecords(library uuid.UUID) (map[string]int, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	unlock, err := m.read()
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := make(map[string]int)
	if l := m.lib(library, false); l != nil {
		for model, mm := range l.models {
			if n := len(mm.byID); n > 0 {
				out[model] = n
			}
		}
	}
	return out, nil
}

// TallyRecords implements RecordTallier.
func (m *Mem) TallyRecords(library uuid.UUID, modelType string) (live, deleted int, err error) {
	if err := validateLibrary(library); err != nil {
		return 0, 0, err
	}
	if err := ValidateModelType(modelType); err != nil {
		return 0, 0, err
	}
	unlock, err := m.read()
	if err != nil {
		return 0, 0, err
	}
	defer unlock()
	if l := m.lib(library, false); l != nil {
		if md := l.model(modelType, false); md != nil {
			for _, r := range md.byID {
				if r.Deleted {
					deleted++
				} else {
					live++
				}
			}
		}
	}
	return live, deleted, nil
}

// CountQuarantined implements Reader.
func (m *Mem) CountQuarantined(library uuid.UUID) (int, error) {
	if err := validateLibrary(library); err != nil {
		return 0, err
	}
	unlock, err := m.read()
	if err != nil {
		return 0, err
	}
	defer unlock()
	if l := m.lib(library, false); l != nil {
		return len(l.quarantine), nil
	}
	return 0, nil
}

// ClockBound implements Reader.
func (m *Mem) ClockBound() (uint64, error) {
	unlock, err := m.read()
	if err != nil {
		return 0, err
	}
	defer unlock()
	return m.clock, nil
}

// Libraries implements Reader.
func (m *Mem) Libraries() ([]Library, error) {
	unlock, err := m.read()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []Library
	for _, l := range m.libraries {
		l.Secret = clone(l.Secret)
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Library) int { return compareUUID(a.ID, b.ID) })
	return out, nil
}

// Members implements Reader.
func (m *Mem) Members(library uuid.UUID) ([]Member, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	unlock, err := m.read()
	if err != nil {
		return nil, err
	}
	defer unlock()
	l := m.lib(library, false)
	if l == nil {
		return nil, nil
	}
	var out []Member
	for _, mb := range l.members {
		out = append(out, mb)
	}
	slices.SortFunc(out, func(a, b Member) int { return compareUUID(a.DeviceID, b.DeviceID) })
	return out, nil
}

// Meta implements Reader.
func (m *Mem) Meta(key string) ([]byte, error) {
	if err := validateMetaKey(key); err != nil {
		return nil, err
	}
	unlock, err := m.read()
	if err != nil {
		return nil, err
	}
	defer unlock()
	v, ok := m.meta[key]
	if !ok {
		return nil, ErrNotFound
	}
	return clone(v), nil
}

// chunked is an ordered set kept as a list of sorted chunks of at most
// chunkMax elements: inserts and removals move at most one chunk, lookups
// are two binary searches. Elements equal under cmp replace each other.
type chunked[T any] struct {
	cmp    func(a, b T) int
	chunks [][]T
	n      int
}

const chunkMax = 512

func (c *chunked[T]) len() int { return c.n }

// search returns the position of the first element for which geq is true
// (geq must be false then true along the order): chunk ci, index i. When no
// element qualifies, ci is len(c.chunks).
func (c *chunked[T]) search(geq func(T) bool) (ci, i int) {
	ci = sort.Search(len(c.chunks), func(j int) bool { ch := c.chunks[j]; return geq(ch[len(ch)-1]) })
	if ci == len(c.chunks) {
		return ci, 0
	}
	ch := c.chunks[ci]
	return ci, sort.Search(len(ch), func(j int) bool { return geq(ch[j]) })
}

func (c *chunked[T]) insert(x T) {
	ci, i := c.search(func(e T) bool { return c.cmp(e, x) >= 0 })
	if ci == len(c.chunks) {
		// Past every element: append to the last chunk.
		if ci == 0 {
			c.chunks = append(c.chunks, make([]T, 0, 8))
		} else {
			ci--
		}
		i = len(c.chunks[ci])
	} else if c.cmp(c.chunks[ci][i], x) == 0 {
		c.chunks[ci][i] = x
		return
	}
	ch := slices.Insert(c.chunks[ci], i, x)
	c.n++
	if len(ch) <= chunkMax {
		c.chunks[ci] = ch
		return
	}
	half := len(ch) / 2
	right := make([]T, len(ch)-half, chunkMax)
	copy(right, ch[half:])
	clear(ch[half:])
	c.chunks[ci] = ch[:half]
	c.chunks = slices.Insert(c.chunks, ci+1, right)
}

func (c *chunked[T]) remove(x T) {
	ci, i := c.search(func(e T) bool { return c.cmp(e, x) >= 0 })
	if ci == len(c.chunks) || c.cmp(c.chunks[ci][i], x) != 0 {
		return
	}
	c.removeAt(ci, i)
}

func (c *chunked[T]) removeAt(ci, i int) {
	ch := slices.Delete(c.chunks[ci], i, i+1)
	c.n--
	if len(ch) == 0 {
		c.chunks = slices.Delete(c.chunks, ci, ci+1)
		return
	}
	c.chunks[ci] = ch
}

// removePrefix removes every element before the first for which geq is true.
func (c *chunked[T]) removePrefix(geq func(T) bool) {
	ci, i := c.search(geq)
	for _, ch := range c.chunks[:ci] {
		c.n -= len(ch)
	}
	if ci < len(c.chunks) && i > 0 {
		c.chunks[ci] = slices.Delete(c.chunks[ci], 0, i)
		c.n -= i
	}
	c.chunks = slices.Delete(c.chunks, 0, ci)
}

// ascend calls fn on each element from the first for which geq is true, in
// order, until fn returns false.
func (c *chunked[T]) ascend(geq func(T) bool, fn func(T) bool) {
	ci, i := c.search(geq)
	for ; ci < len(c.chunks); ci, i = ci+1, 0 {
		for _, e := range c.chunks[ci][i:] {
			if !fn(e) {
				return
			}
		}
	}
}

func validateLibrary(id uuid.UUID) error {
	if id == uuid.Nil {
		return fmt.Errorf("%w: nil library ID", ErrInvalid)
	}
	return nil
}

func errInvalidLimit(limit int) error {
	return fmt.Errorf("%w: limit %d, want at least 1", ErrInvalid, limit)
}
