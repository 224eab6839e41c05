package engine

import (
	"errors"
	"fmt"
	"sort"
)

// Strategy says how a model type is synced.
type Strategy int

const (
	// DeviceOwned records are written only by their owning device; peers
	// copy the owner's current state ("state-based").
	DeviceOwned Strategy = iota + 1
	// Shared records are written by any member; every change carries an HLC
	// and the newest wins ("log-based").
	Shared
	// SharedFields records sync as Shared ones (the same streams, log and
	// messages), but their payloads are CBOR maps merged per top-level
	// field: each field keeps its greatest-HLC write (docs/PROTOCOL.md §11).
	SharedFields
)

// String returns "device-owned", "shared" or "shared-fields".
func (s Strategy) String() string {
	switch s {
	case DeviceOwned:
		return "device-owned"
	case Shared:
		return "shared"
	case SharedFields:
		return "shared-fields"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// ModelType declares one model type.
type ModelType struct {
	// Name is the model type's name on the wire, e.g. "location".
	Name string
	// Strategy is how its records sync.
	Strategy Strategy
	// DependsOn lists model types whose records must reach a new device
	// before this type's records (parents before children).
	DependsOn []string
}

// ErrUnknownModelType is returned for a model type the registry does not
// hold.
var ErrUnknownModelType = errors.New("engine: unknown model type")

// Registry holds the model types a node syncs, and their dependency order.
// A Registry is immutable once built and safe for concurrent use.
type Registry struct {
	types map[string]ModelType
	order []string // topological: parents first, ties by name
}

// NewRegistry checks the declarations (names unique and non-empty, strategies
// known, dependencies declared and acyclic) and returns the registry.
func NewRegistry(types ...ModelType) (*Registry, error) {
	r := &Registry{types: make(map[string]ModelType, len(types))}
	for _, t := range types {
		if t.Name == "" {
			return nil, errors.New("engine: model type with an empty name")
		}
		if t.Strategy != DeviceOwned && t.Strategy != Shared && t.Strategy != SharedFields {
			return nil, fmt.Errorf("engine: model type %q: strategy must be device-owned, shared or shared-fields", t.Name)
		}
		if _, dup := r.types[t.Name]; dup {
			return nil, fmt.Errorf("engine: model type %q declared twice", t.Name)
		}
		t.DependsOn = append([]string(nil), t.DependsOn...)
		r.types[t.Name] = t
	}
	for _, t := range r.types {
		for _, d := range t.DependsOn {
			if _, ok := r.types[d]; !ok {
				return nil, fmt.Errorf("engine: model type %q depends on %q, which is not declared", t.Name, d)
			}
		}
	}
	// Kahn's algorithm with names sorted, so the order is deterministic.
	names := make([]string, 0, len(r.types))
	for n := range r.types {
		names = append(names, n)
	}
	sort.Strings(names)
	placed := make(map[string]bool, len(names))
	for len(r.order) < len(names) {
		progress := false
		for _, n := range names {
			if placed[n] {
				continue
			}
			ready := true
			for _, d := range r.types[n].DependsOn {
				if !placed[d] {
					ready = false
					break
				}
			}
			if ready {
				placed[n] = true
				r.order = append(r.order, n)
				progress = true
			}
		}
		if !progress {
			return nil, errors.New("engine: model type dependencies form a cycle")
		}
	}
	return r, nil
}

// DefaultRegistry returns Spacedrive's mapping: location, entry and volume are
// device-owned (entry after location); tag, album, user_metadata and device
// are shared.
func DefaultRegistry() *Registry {
	r, err := NewRegistry(
		ModelType{Name: "location", Strategy: DeviceOwned},
		ModelType{Name: "volume", Strategy: DeviceOwned},
		ModelType{Name: "entry", Strategy: DeviceOwned, DependsOn: []string{"location"}},
		ModelType{Name: "device", Strategy: Shared},
		ModelType{Name: "tag", Strategy: Shared},
		ModelType{Name: "album", Strategy: Shared},
		ModelType{Name: "user_metadata", Strategy: Shared, DependsOn: []string{"tag"}},
	)
	if err != nil {
		panic("engine: default registry is broken: " + err.Error())
	}
	return r
}

// Lookup returns a model type's declaration.
func (r *Registry) Lookup(name string) (ModelType, error) {
	t, ok := r.types[name]
	if !ok {
		return ModelType{}, fmt.Errorf("%w %q", ErrUnknownModelType, name)
	}
	return t, nil
}

// Strategy returns how a model type syncs: DeviceOwned or Shared (also for
// a SharedFields type, which syncs as Shared does), or 0 if it is unknown.
// Lookup returns the declared strategy.
func (r *Registry) Strategy(name string) Strategy { return r.types[name].Strategy.kind() }

// FieldMerge reports whether a model type's records merge per field
// (SharedFields).
func (r *Registry) FieldMerge(name string) bool { return r.types[name].Strategy == SharedFields }

// kind is the sync kind of a strategy: SharedFields syncs as Shared.
func (s Strategy) kind() Strategy {
	if s == SharedFields {
		return Shared
	}
	return s
}

// ParseStrategy returns the strategy a String names.
func ParseStrategy(name string) (Strategy, error) {
	for _, s := range []Strategy{DeviceOwned, Shared, SharedFields} {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("engine: strategy must be \"device-owned\", \"shared\" or \"shared-fields\", is %q", name)
}

// Ordered returns the model types that sync by one strategy (0: all;
// Shared includes SharedFields types) in dependency order, parents first.
func (r *Registry) Ordered(s Strategy) []string {
	out := make([]string, 0, len(r.order))
	for _, n := range r.order {
		if s == 0 || r.types[n].Strategy.kind() == s.kind() {
			out = append(out, n)
		}
	}
	return out
}

// rank returns the position of a model type in dependency order.
func (r *Registry) rank(name string) int {
	for i, n := range r.order {
		if n == name {
			return i
		}
	}
	return len(r.order)
}
