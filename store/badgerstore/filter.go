package badgerstore

import (
	"errors"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
)

// The record filter answers "is no record stored under this key?" without
// touching Badger. Every received record is looked up before it is applied
// (last writer wins), and most of them, in a backfill all of them, are not
// stored yet. A miss costs Badger as much as a hit: a search of every
// memtable's skip list, then a Bloom filter per table. The filter is a
// blocked Bloom filter of every record key: Apply adds the keys it writes
// before it commits them, and Open either loads the filter that the last
// clean Close saved (filterfile.go) or adds the keys stored, in the
// background (until that is done, Record asks Badger). Keys are never
// removed (a dropped or purged record stays a false positive until the next
// rebuild), and
// when the keys outgrow the filter a four times larger one is added beside
// it, so that the false-positive rate stays near 1%.
type recordFilter struct {
	ready  atomic.Bool
	mu     sync.Mutex               // serialises growth
	blooms atomic.Pointer[[]*bloom] // the newest last; replaced, never changed
}

// Sizes of the record filter.
const (
	filterFirstKeys = 1 << 18 // capacity of the first Bloom filter
	filterGrowth    = 4       // each next one holds this many times more
	filterBitsKey   = 10      // bits per key: about 1% false positives
	filterProbes    = 6       // bits set per key, within one 512-bit block
)

// bloom is one blocked Bloom filter: a key sets filterProbes bits within
// one block of 8 words (one cache line).
type bloom struct {
	words    []atomic.Uint64
	blocks   uint64
	capacity int64
	keys     atomic.Int64
}

// newBloomSize returns the number of blocks of a Bloom filter of capacity.
func newBloomSize(capacity int64) uint64 { return uint64(capacity*filterBitsKey/512 + 1) }

func newBloom(capacity int64) *bloom {
	blocks := newBloomSize(capacity)
	return &bloom{words: make([]atomic.Uint64, blocks*8), blocks: blocks, capacity: capacity}
}

func newRecordFilter() *recordFilter {
	f := &recordFilter{}
	first := []*bloom{newBloom(filterFirstKeys)}
	f.blooms.Store(&first)
	return f
}

// filterHash is the hash of a record key. It must not depend on the process
// (hash/maphash seeds do): the filter is saved and loaded (filterfile.go),
// whose format version must change with it or with the sizes above.
func filterHash(key []byte) uint64 { return xxhash.Sum64(key) }

// set sets the key's bits; has reports whether they are all set. h is the
// key's hash; the block is chosen from it, the bits within the block by a
// sequence seeded from it.
func (b *bloom) set(h uint64) {
	block, x := b.start(h)
	for i := 0; i < filterProbes; i++ {
		var bit uint64
		bit, x = next(x)
		b.words[block+bit/64].Or(1 << (bit % 64))
	}
}

func (b *bloom) has(h uint64) bool {
	block, x := b.start(h)
	for i := 0; i < filterProbes; i++ {
		var bit uint64
		bit, x = next(x)
		if b.words[block+bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

func (b *bloom) start(h uint64) (block, x uint64) {
	return (h % b.blocks) * 8, bits.RotateLeft64(h, 29)
}

// next returns a bit of a block (0 to 511) and the next state.
func next(x uint64) (uint64, uint64) {
	x = x*0x9e3779b97f4a7c15 + 0x632be59bd9b4e019
	return x >> 55, x
}

// add records that key may be stored. A key some filter already has is not
// counted again: the filters grow with the records stored, not with the
// writes (an update of a record adds nothing).
func (f *recordFilter) add(key []byte) {
	h := filterHash(key)
	bs := *f.blooms.Load()
	for _, b := range bs {
		if b.has(h) {
			return
		}
	}
	b := bs[len(bs)-1]
	if b.keys.Add(1) > b.capacity {
		b = f.grow(b)
	}
	b.set(h)
}

// grow adds a larger Bloom filter after full, unless another call did, and
// returns the newest.
func (f *recordFilter) grow(full *bloom) *bloom {
	f.mu.Lock()
	defer f.mu.Unlock()
	bs := *f.blooms.Load()
	if newest := bs[len(bs)-1]; newest != full {
		return newest
	}
	next := append(append([]*bloom(nil), bs...), newBloom(full.capacity*filterGrowth))
	f.blooms.Store(&next)
	return next[len(next)-1]
}

// absent reports whether no record is stored under key, as far as the
// filter knows: true only once the filter holds every stored key.
func (f *recordFilter) absent(key []byte) bool {
	if !f.ready.Load() {
		return false
	}
	h := filterHash(key)
	for _, b := range *f.blooms.Load() {
		if b.has(h) {
			return false
		}
	}
	return true
}

// errFilterStopped ends fillFilter when the store closes.
var errFilterStopped = errors.New("badgerstore: closing")

// fillFilter adds every stored record key, read from one snapshot (keys committed
// later were added by Apply), and then makes the filter ready. It gives up
// when stop is closed.
func (s *Store) fillFilter(stop <-chan struct{}) {
	defer close(s.filterDone)
	err := s.view(func(txn *badger.Txn) error {
		prefix := []byte{kindRecord}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix}) // keys only
		defer it.Close()
		n := 0
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			s.filter.add(it.Item().Key())
			if n++; n%4096 == 0 {
				select {
				case <-stop:
					return errFilterStopped
				default:
				}
			}
		}
		return nil
	})
	if err != nil {
		if err != errFilterStopped {
			s.log.Warn("badgerstore: filling the record filter; record lookups ask Badger", "err", err)
		}
		return
	}
	s.filter.ready.Store(true)
}
