package badgerstore

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
)

// The record filter file. Filling the record filter at Open scans every
// record key (about 13 s for 10M records), so a clean Close saves the filter
// in the store's directory and the next Open loads it instead. A filter that
// misses a stored key would make Record answer ErrNotFound for a record that
// exists (and the engine then overwrite a newer version), so a file is used
// only when it provably describes this database as it is:
//
//   - Close writes it last, holding the store closed to every call (no write
//     can follow), after the filter was complete (filled or loaded), and
//     after writing a fresh random nonce into the database (filterKey). The
//     file records that nonce and Badger's MaxVersion (the commit timestamp of
//     the latest write) after it.
//   - Open reads the file and removes it (and syncs the directory) before it
//     returns, so a process that then crashes, never closing cleanly, leaves
//     no file and the next Open scans. If the file cannot be removed, it is
//     not used.
//   - Open uses the file only when its checksum, format and sizes are right,
//     its nonce is the database's and its MaxVersion is the database's at
//     Open: any write after the save (by anything that opened the directory
//     without this code, or replayed after a crash) raises MaxVersion, and a
//     file from another database, or restored beside an older copy, carries
//     another nonce.
//
// Anything else (no file, a corrupt or stale one) means a scan, as before:
// the file can make Open faster, never an answer wrong.
//
// Format 1, integers little-endian:
//
//	"SNRF" | format uint32 | nonce [16] | max version uint64 | blooms uint32 |
//	per Bloom filter: capacity uint64 | keys uint64 | blocks uint64 |
//	                  blocks*8 words uint64 |
//	xxhash64 of everything before it, uint64
//
// The format must change whenever filterHash, the probe sequence or the
// sizes of filter.go change.
const (
	filterFileName   = "recordfilter"
	filterFileFormat = 1
	filterFileMagic  = "SNRF"
	maxFilterBlooms  = 20 // far beyond any store: 2^18 * 4^19 keys
)

// errFilterFile is wrapped by every reason a filter file is not used.
var errFilterFile = errors.New("badgerstore: record filter file not used")

// saveFilter writes the record filter to the store's directory for the next
// Open to load. Close calls it with s.mu held for writing, before the
// database closes. It writes nothing when the filter is not complete.
func (s *Store) saveFilter() error {
	if !s.filter.ready.Load() {
		return nil
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	if err := s.update(func(txn *badger.Txn) error {
		return txn.Set(filterKey, appendBytesValue(nil, nonce[:]))
	}); err != nil {
		return fmt.Errorf("writing the record filter's nonce: %w", err)
	}
	maxVersion := s.db.MaxVersion()
	path := filepath.Join(s.dir, filterFileName)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after a successful rename, there is none
	if err := s.filter.writeTo(f, nonce, maxVersion); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// writeTo writes the filter in the file format. The caller ensures that
// nothing adds keys meanwhile.
func (f *recordFilter) writeTo(w io.Writer, nonce [16]byte, maxVersion uint64) error {
	h := xxhash.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<16)
	var b [8]byte
	u32 := func(v uint32) { binary.LittleEndian.PutUint32(b[:4], v); bw.Write(b[:4]) }
	u64 := func(v uint64) { binary.LittleEndian.PutUint64(b[:], v); bw.Write(b[:]) }
	bw.WriteString(filterFileMagic)
	u32(filterFileFormat)
	bw.Write(nonce[:])
	u64(maxVersion)
	bs := *f.blooms.Load()
	u32(uint32(len(bs)))
	for _, bl := range bs {
		u64(uint64(bl.capacity))
		u64(uint64(bl.keys.Load()))
		u64(bl.blocks)
		for i := range bl.words {
			u64(bl.words[i].Load())
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b[:], h.Sum64())
	_, err := w.Write(b[:])
	return err
}

// loadFilter loads the file that the last clean Close saved, when it
// describes this database (see above), into s.filter and makes it ready.
// maxVersion is Badger's MaxVersion right after it opened. It removes the
// file in any case; it returns nil when there was none, and an error wrapping
// errFilterFile when there was one it did not use.
func (s *Store) loadFilter(maxVersion uint64) (loaded bool, err error) {
	path := filepath.Join(s.dir, filterFileName)
	os.Remove(path + ".tmp") // left by a crash during Close
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", errFilterFile, err)
	}
	blooms, nonce, version, readErr := readFilter(file)
	file.Close()
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("%w: removing it: %w", errFilterFile, err)
	}
	if err := syncDir(s.dir); err != nil {
		return false, fmt.Errorf("%w: removing it: %w", errFilterFile, err)
	}
	if readErr != nil {
		return false, fmt.Errorf("%w: %w", errFilterFile, readErr)
	}
	if version != maxVersion {
		return false, fmt.Errorf("%w: saved at database version %d, the database is at %d (written since)", errFilterFile, version, maxVersion)
	}
	var dbNonce []byte
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(filterKey)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		dbNonce, err = decodeBytesValue(filterKey, v)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%w: reading the database's nonce: %w", errFilterFile, translate(err))
	}
	if string(dbNonce) != string(nonce[:]) {
		return false, fmt.Errorf("%w: saved for another database (nonce %x, the database's %x)", errFilterFile, nonce, dbNonce)
	}
	s.filter.blooms.Store(&blooms)
	s.filter.ready.Store(true)
	return true, nil
}

// readFilter reads a filter file, checking its checksum, format and sizes.
// It allocates no more than the file's size.
func readFilter(file *os.File) (blooms []*bloom, nonce [16]byte, maxVersion uint64, err error) {
	info, err := file.Stat()
	if err != nil {
		return nil, nonce, 0, err
	}
	left := info.Size() - 8 // the checksum
	h := xxhash.New()
	r := bufio.NewReaderSize(io.TeeReader(io.LimitReader(file, max(left, 0)), h), 1<<16)
	var b [8]byte
	read := func(n int) []byte {
		if err == nil {
			_, err = io.ReadFull(r, b[:n])
			left -= int64(n)
		}
		return b[:n]
	}
	u64 := func() uint64 { return binary.LittleEndian.Uint64(read(8)) }
	if magic := string(read(4)); err == nil && magic != filterFileMagic {
		return nil, nonce, 0, fmt.Errorf("not a record filter file (starts %q)", magic)
	}
	if format := binary.LittleEndian.Uint32(read(4)); err == nil && format != filterFileFormat {
		return nil, nonce, 0, fmt.Errorf("format %d, want %d", format, filterFileFormat)
	}
	if err == nil {
		_, err = io.ReadFull(r, nonce[:])
		left -= 16
	}
	maxVersion = u64()
	n := binary.LittleEndian.Uint32(read(4))
	if err != nil {
		return nil, nonce, 0, fmt.Errorf("reading the header: %w", err)
	}
	if n < 1 || n > maxFilterBlooms {
		return nil, nonce, 0, fmt.Errorf("%d Bloom filters, want 1 to %d", n, maxFilterBlooms)
	}
	capacity := int64(filterFirstKeys)
	for i := 0; i < int(n); i++ {
		c, keys, blocks := u64(), u64(), u64()
		if err != nil {
			return nil, nonce, 0, fmt.Errorf("reading Bloom filter %d: %w", i, err)
		}
		want := newBloomSize(capacity)
		if c != uint64(capacity) || blocks != want || keys > 1<<62 {
			return nil, nonce, 0, fmt.Errorf("Bloom filter %d: capacity %d, %d blocks, %d keys; want capacity %d, %d blocks", i, c, blocks, keys, capacity, want)
		}
		if int64(blocks*64) > left {
			return nil, nonce, 0, fmt.Errorf("Bloom filter %d: %d blocks, the file has %d bytes left", i, blocks, left)
		}
		bl := newBloom(capacity)
		bl.keys.Store(int64(keys))
		for j := range bl.words {
			bl.words[j].Store(u64())
		}
		if err != nil {
			return nil, nonce, 0, fmt.Errorf("reading Bloom filter %d: %w", i, err)
		}
		blooms = append(blooms, bl)
		capacity *= filterGrowth
	}
	if left != 0 {
		return nil, nonce, 0, fmt.Errorf("%d bytes after the Bloom filters", left)
	}
	if _, err := io.ReadFull(file, b[:]); err != nil {
		return nil, nonce, 0, fmt.Errorf("reading the checksum: %w", err)
	}
	if sum := binary.LittleEndian.Uint64(b[:]); sum != h.Sum64() {
		return nil, nonce, 0, fmt.Errorf("checksum %016x, the content's %016x", sum, h.Sum64())
	}
	return blooms, nonce, maxVersion, nil
}

// syncDir fsyncs a directory, so that a rename or removal in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
