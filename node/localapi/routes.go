package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/node/pairing"
	"github.com/syncnode/syncnode/node/relayservice"
	"github.com/syncnode/syncnode/protocol"
)

// apiError is an error with the HTTP status and code it is answered with.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{http.StatusNotFound, "not_found", fmt.Sprintf(format, args...)}
}

// handler is an endpoint that returns its answer or an error.
type handler func(r *http.Request) (status int, body any, err error)

// handle serves an endpoint that needs the token or a browser session.
func (s *Server) handle(pattern string, h handler) {
	s.mux.Handle(pattern, s.authed(false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		status, body, err := h(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, status, body)
	})))
}

// fail answers an error with the status that fits it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.code, ae.msg)
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes (a record's value may take at most %s as CBOR)", tooLarge.Limit, recordLimitText))
	case errors.Is(err, node.ErrRemoved):
		writeError(w, http.StatusForbidden, "removed", err.Error())
	case errors.Is(err, node.ErrAlreadyMember), errors.Is(err, node.ErrNameTaken):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, node.ErrInviterUnreachable):
		writeError(w, http.StatusBadGateway, "unreachable", err.Error())
	case errors.Is(err, node.ErrUnknownLibrary):
		writeError(w, http.StatusNotFound, "not_found", "this node holds no such library")
	case errors.Is(err, node.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such record")
	case errors.Is(err, engine.ErrUnknownModelType), errors.Is(err, protocol.ErrUnknownModelType):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, engine.ErrInvalidWrite), errors.Is(err, engine.ErrWrongStrategy):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, pairing.ErrMalformed):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, pairing.ErrExpired), errors.Is(err, pairing.ErrUsed), errors.Is(err, pairing.ErrUnknown), errors.Is(err, pairing.ErrBadProof):
		writeError(w, http.StatusForbidden, "refused", err.Error())
	case errors.Is(err, node.ErrClosed), errors.Is(err, node.ErrNotStarted):
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the node is shutting down")
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "timeout", err.Error())
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
	default:
		s.log.Error("local API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

func (s *Server) routes() {
	s.handle("GET /v1/status", s.status)
	s.handle("GET /v1/network", s.network)
	s.handle("GET /v1/doctor", s.doctor)
	s.handle("GET /v1/models", s.models)
	s.handle("GET /v1/libraries", s.listLibraries)
	s.handle("POST /v1/libraries", s.createLibrary)
	s.handle("POST /v1/libraries/join", s.join)
	s.handle("GET /v1/libraries/{lib}", s.libraryStatus)
	s.handle("GET /v1/libraries/{lib}/members", s.members)
	s.handle("GET /v1/libraries/{lib}/peers", s.peers)
	s.handle("POST /v1/libraries/{lib}/invites", s.invite)
	s.handle("POST /v1/libraries/{lib}/leave", s.leave)
	s.handle("DELETE /v1/libraries/{lib}/devices/{device}", s.removeDevice)
	s.handle("POST /v1/libraries/{lib}/batch", s.batch)
	s.handle("GET /v1/libraries/{lib}/records/{model}", s.listRecords)
	s.handle("POST /v1/libraries/{lib}/records/{model}", s.putRecord)
	s.handle("GET /v1/libraries/{lib}/records/{model}/{id}", s.getRecord)
	s.handle("PUT /v1/libraries/{lib}/records/{model}/{id}", s.putRecord)
	s.handle("PATCH /v1/libraries/{lib}/records/{model}/{id}", s.patchRecord)
	s.handle("DELETE /v1/libraries/{lib}/records/{model}/{id}", s.deleteRecord)
	s.handle("GET /v1/libraries/{lib}/records/{model}/{id}/history", s.history)
	s.handle("GET /v1/libraries/{lib}/models", s.libraryModels)
	s.handle("GET /v1/warnings", s.warnings)
	// EventSource cannot send headers: a browser session's key may come as
	// ?csrf= here.
	s.mux.Handle("GET /v1/libraries/{lib}/events", s.authed(true, http.HandlerFunc(s.events)))
	// The dashboard, and how a browser signs in.
	s.mux.HandleFunc("GET /{$}", s.dashboard)
	s.mux.HandleFunc("GET /ui/{file...}", s.dashboard)
	s.mux.HandleFunc("POST /v1/session", s.signIn)
	s.mux.HandleFunc("GET /v1/session", s.sessionState)
	s.mux.Handle("DELETE /v1/session", s.authed(false, http.HandlerFunc(s.signOut)))
	s.handle("POST /v1/session/links", s.newSignInLink)
	s.mux.Handle("/", s.authed(false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s (see docs/API.md)", r.Method, r.URL.Path))
	})))
}

// ---- helpers ----

func pathUUID(r *http.Request, name, what string) (uuid.UUID, error) {
	v := r.PathValue(name)
	id, err := uuid.Parse(v)
	if err != nil {
		return uuid.Nil, badRequest("%s %q is not a UUID", what, v)
	}
	return id, nil
}

func (s *Server) library(r *http.Request) (*node.Library, error) {
	id, err := pathUUID(r, "lib", "library")
	if err != nil {
		return nil, err
	}
	libs, err := s.n.Libraries()
	if err != nil {
		return nil, err
	}
	for _, l := range libs {
		if l.ID == id {
			return s.n.Library(id), nil
		}
	}
	return nil, notFound("this node holds no library %s", id)
}

// decodeBody reads a JSON object into v; an empty body leaves v as it is
// when optional.
func decodeBody(r *http.Request, v any, optional bool) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(b) == 0 && optional {
		return nil
	}
	if len(b) == 0 {
		return badRequest("the body is empty: send a JSON object")
	}
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("the body is not the expected JSON object: %v", err)
	}
	if dec.More() {
		return badRequest("the body holds more than one JSON value")
	}
	return nil
}

func recordJSON(lib uuid.UUID, rec node.Record) Record {
	out := Record{
		Library: lib.String(), Model: rec.ModelType, ID: rec.ID.String(),
		Version: rec.Version.String(), By: rec.Version.DeviceID.String(),
		Deleted: rec.Deleted, Data: cborToJSON(rec.Data),
	}
	if rec.Fields != nil {
		out.Fields = make(map[string]string, len(rec.Fields))
		for name, h := range rec.Fields {
			out.Fields[name] = h.String()
		}
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// ---- node and libraries ----

func (s *Server) nodeInfo() NodeInfo {
	info := s.n.AddrInfo()
	ni := NodeInfo{Device: s.n.Device().String(), Peer: info.ID.String(), Name: s.n.DeviceName(), Protocol: protocol.ProtocolID}
	for _, a := range info.Addrs {
		ni.Addrs = append(ni.Addrs, a.String())
	}
	return ni
}

func (s *Server) discovery() []DiscoverySource {
	out := []DiscoverySource{}
	for _, d := range s.n.Discovery() {
		ds := DiscoverySource{Name: d.Name, Enabled: d.Enabled, Found: d.Found, RoutingTable: d.RoutingTable, LastError: d.LastError}
		for _, p := range d.Recent {
			ds.Recent = append(ds.Recent, p.String())
		}
		out = append(out, ds)
	}
	return out
}

func (s *Server) status(r *http.Request) (int, any, error) {
	st := Status{Node: s.nodeInfo(), Libraries: []LibraryStatus{}, Discovery: s.discovery(), Network: networkJSON(s.n.Network())}
	libs, err := s.n.Libraries()
	if err != nil {
		return 0, nil, err
	}
	for _, l := range libs {
		ls, err := s.libStatus(r.Context(), s.n.Library(l.ID))
		if errors.Is(err, node.ErrUnknownLibrary) {
			continue // left while we looked
		}
		if err != nil {
			return 0, nil, err
		}
		st.Libraries = append(st.Libraries, ls)
	}
	return http.StatusOK, st, nil
}

func (s *Server) libStatus(ctx context.Context, l *node.Library) (LibraryStatus, error) {
	st, err := l.Status(ctx)
	if err != nil {
		return LibraryStatus{}, err
	}
	out := LibraryStatus{
		Library:     libraryJSON(st.LibraryInfo),
		Members:     membersJSON(st.Members, s.n.Device()),
		Peers:       peersJSON(st.Peers, st.Members),
		Quarantined: st.Quarantined, LogEntries: st.LogEntries,
		PrunedUpTo: timePtr(st.PrunedUpTo), HorizonHours: st.Horizon.Hours(), Received: st.Received, CaughtUp: st.CaughtUp,
	}
	if b := st.Backfill; b != nil {
		out.Backfill = &Backfill{Expected: b.Expected, Received: b.Received, Started: b.Started.UTC(), Done: b.Done}
	}
	return out, nil
}

func membersJSON(ms []node.Member, self uuid.UUID) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		mj := Member{Device: m.Device.String(), Peer: m.Peer.String(), Name: m.Name, Self: m.Device == self}
		for _, a := range m.Addrs {
			mj.Addrs = append(mj.Addrs, a.String())
		}
		out = append(out, mj)
	}
	return out
}

func peersJSON(ps []node.PeerState, ms []node.Member) []Peer {
	names := make(map[uuid.UUID]string, len(ms))
	for _, m := range ms {
		names[m.Device] = m.Name
	}
	out := make([]Peer, 0, len(ps))
	for _, p := range ps {
		r := p.Reach
		pj := Peer{
			Device: p.Device.String(), Peer: p.Peer.String(), Name: names[p.Device], State: p.State,
			Pages: p.Pages, Records: p.Records, LagMS: p.Lag.Milliseconds(), LastHeard: timePtr(p.LastHeard),
			Path: PeerPath{Kind: r.Path.Kind, Text: r.Path.String(), Limited: r.Path.Limited,
				Transport: r.Path.Transport, Addr: r.Path.Addr},
			Addrs: addrStrings(r.Addrs), LastDial: timePtr(r.LastDial), LastDialError: r.LastDialError,
		}
		if r.Path.Relay != "" {
			pj.Path.Relay = r.Path.Relay.String()
		}
		if hp := r.HolePunch; hp != nil {
			pj.HolePunch = &HolePunch{Attempts: hp.Attempts, Failures: hp.Failures, LastAt: timePtr(hp.LastAt),
				LastError: hp.LastError, Succeeded: timePtr(hp.Succeeded)}
		}
		out = append(out, pj)
	}
	return out
}

func addrStrings(as []ma.Multiaddr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func networkJSON(ns node.NetworkStatus) Network {
	out := Network{
		Listen: addrStrings(ns.Listen), Addrs: addrStrings(ns.Addrs), Reachability: ns.Reachability,
		Forced: ns.ReachabilityForced, Reachable: addrStrings(ns.Reachable), Unreachable: addrStrings(ns.Unreachable),
		Observed: addrStrings(ns.Observed), NAT: ns.NATKind, ObservedBy: ns.ObservedBy, AutoRelay: ns.AutoRelay, Relays: []RelayReservation{},
		HolePunching: ns.HolePunching, HolePunchAddrs: addrStrings(ns.HolePunchAddrs),
		PortMapping: PortMapping{Enabled: ns.PortMapping.Enabled, RouterFound: ns.PortMapping.RouterFound},
	}
	if out.Listen == nil {
		out.Listen = []string{}
	}
	if out.Addrs == nil {
		out.Addrs = []string{}
	}
	for _, m := range ns.PortMapping.Mappings {
		out.PortMapping.Mappings = append(out.PortMapping.Mappings, Mapping{Internal: m.Internal.String(), External: m.External.String()})
	}
	for _, r := range ns.Relays {
		out.Relays = append(out.Relays, RelayReservation{Relay: r.Relay.String(), Addrs: addrStrings(r.Addrs), Member: r.Member})
	}
	if rs := ns.RelayService; rs != nil {
		class := func(c relayservice.ClassStatus) RelayClass {
			return RelayClass{Reservations: c.Reservations, Circuits: c.Circuits, Refused: c.Refused, Bytes: c.Bytes}
		}
		out.RelayService = &RelayService{Strangers: rs.StrangerPolicy, Members: class(rs.Members),
			StrangersUse: class(rs.Strangers), StrangerCircuits: rs.StrangerCircuitsToMembers}
	}
	return out
}

func (s *Server) network(*http.Request) (int, any, error) {
	return http.StatusOK, networkJSON(s.n.Network()), nil
}

func (s *Server) doctor(r *http.Request) (int, any, error) {
	d, err := s.n.Doctor(r.Context())
	if err != nil {
		return 0, nil, err
	}
	out := Doctor{Checks: []Check{}, Failed: d.Failed}
	for _, c := range d.Checks {
		out.Checks = append(out.Checks, Check{Area: c.Area, Name: c.Name, Status: c.Status, Message: c.Message, Fix: c.Fix})
	}
	return http.StatusOK, out, nil
}

func (s *Server) models(*http.Request) (int, any, error) {
	reg := s.n.Registry()
	var out []Model
	for _, st := range []engine.Strategy{engine.DeviceOwned, engine.Shared} {
		for _, name := range reg.Ordered(st) {
			t, _ := reg.Lookup(name)
			out = append(out, Model{Name: t.Name, Strategy: t.Strategy.String(), DependsOn: t.DependsOn})
		}
	}
	return http.StatusOK, out, nil
}

func (s *Server) listLibraries(*http.Request) (int, any, error) {
	libs, err := s.n.Libraries()
	if err != nil {
		return 0, nil, err
	}
	out := make([]Library, 0, len(libs))
	for _, l := range libs {
		out = append(out, libraryJSON(l))
	}
	return http.StatusOK, out, nil
}

func (s *Server) createLibrary(r *http.Request) (int, any, error) {
	var req CreateLibraryRequest
	if err := decodeBody(r, &req, false); err != nil {
		return 0, nil, err
	}
	if req.Name == "" || len(req.Name) > 256 {
		return 0, nil, badRequest("a library needs a name of 1 to 256 bytes")
	}
	l, err := s.n.CreateLibrary(r.Context(), req.Name)
	if err != nil {
		return 0, nil, err
	}
	info, err := s.libraryInfo(l.ID())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, info, nil
}

// libraryInfo is the JSON of one library, as GET /v1/libraries lists it.
func (s *Server) libraryInfo(id uuid.UUID) (Library, error) {
	libs, err := s.n.Libraries()
	if err != nil {
		return Library{}, err
	}
	for _, l := range libs {
		if l.ID == id {
			return libraryJSON(l), nil
		}
	}
	return Library{}, fmt.Errorf("%w %s", node.ErrUnknownLibrary, id)
}

func libraryJSON(l node.LibraryInfo) Library {
	out := Library{ID: l.ID.String(), Name: l.Name, CreatedAt: l.CreatedAt}
	if r := l.Removed; r != nil {
		out.Removed = &Removed{By: r.By.String(), At: r.At.UTC(), Version: r.Version.String()}
	}
	return out
}

func (s *Server) join(r *http.Request) (int, any, error) {
	var req JoinRequest
	if err := decodeBody(r, &req, false); err != nil {
		return 0, nil, err
	}
	if req.Code == "" {
		return 0, nil, badRequest("the invite code is missing: send {\"code\": \"syncnode1-...\"}")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	l, err := s.n.Join(ctx, req.Code)
	if err != nil {
		return 0, nil, err
	}
	info, err := s.libraryInfo(l.ID())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, info, nil
}

func (s *Server) libraryStatus(r *http.Request) (int, any, error) {
	l, err := s.library(r)
	if err != nil {
		return 0, nil, err
	}
	st, err := s.libStatus(r.Context(), l)
	return http.StatusOK, st, err
}

func (s *Server) members(r *http.Request) (int, any, error) {
	l, err := s.library(r)
	if err != nil {
		return 0, nil, err
	}
	ms, err := l.Members(r.Context())
	return http.StatusOK, membersJSON(ms, s.n.Device()), err
}

func (s *Server) peers(r *http.Request) (int, any, error) {
	l, err := s.library(r)
	if err != nil {
		return 0, nil, err
	}
	ms, err := l.Members(r.Context())
	if err != nil {
		return 0, nil, err
	}
	ps, err := l.Peers(r.Context())
	return http.StatusOK, peersJSON(ps, ms), err
}

func (s *Server) invite(r *http.Request) (int, any, error) {
	l, err := s.library(r)
	if err != nil {
		return 0, nil, err
	}
	var req InviteRequest
	if err := decodeBody(r, &req, true); err != nil {
		return 0, nil, err
	}
	ttl := time.Hour
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 || ttl > 30*24*time.Hour {
			return 0, nil, badRequest("ttl %q is not a duration between 1s and 720h (e.g. \"1h\")", req.TTL)
		}
	}
	code, err := l.Invite(r.Context(), ttl, req.SingleUse)
	if err != nil {
		return 0, nil, err
	}
	inv := Invite{Code: code, Expires: time.Now().Add(ttl).UTC().Truncate(time.Second), SingleUse: req.SingleUse}
	if req.QR {
		if inv.QRSVG, err = qrSVG(code); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusCreated, inv, nil
}

func (s *Server) leave(r *http.Request) (int, any, error) {
	l, err := s.library(r)
	if err != nil {
		return 0, nil, err
	}
	var req LeaveRequest
	if err := decodeBody(r, &req, true); err != nil {
		return 0, nil, err
	}
	if err := l.Leave(r.Context(), req.DeleteData); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"left": l.ID().String(), "deleted_data": req.DeleteData}, nil
}

func (s *Server) removeDevice(r *http.Request) (int, any, error) {
	l, err := s.library(r)
	if err != nil {
		return 0, nil, err
	}
	dev, err := pathUUID(r, "device", "device")
	if err != nil {
		return 0, nil, err
	}
	if dev == s.n.Device() {
		return 0, nil, badRequest("this is this node's own device: use leave instead")
	}
	ms, err := l.Members(r.Context())
	if err != nil {
		return 0, nil, err
	}
	member := false
	for _, m := range ms {
		member = member || m.Device == dev
	}
	if !member {
		return 0, nil, notFound("device %s is not a member of this library", dev)
	}
	if err := l.RemoveDevice(r.Context(), dev); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"removed": dev.String()}, nil
}

// ---- records ----

// target is the record (or model type, for lists and new records) a request
// names.
type target struct {
	l  *node.Library
	t  engine.ModelType
	id uuid.UUID // uuid.Nil when the path has no ID
}

// target reads the library, model type and, if the path has one, record ID
// of a request; forWrite refuses the device model.
func (s *Server) target(r *http.Request, forWrite bool) (target, error) {
	var tg target
	var err error
	if tg.l, err = s.library(r); err != nil {
		return tg, err
	}
	name := r.PathValue("model")
	if tg.t, err = s.n.Registry().Lookup(name); err != nil {
		return tg, badRequest("unknown model type %q (GET /v1/models lists them)", name)
	}
	if forWrite {
		if err := writable(tg.t); err != nil {
			return tg, err
		}
	}
	if r.PathValue("id") != "" {
		if tg.id, err = pathUUID(r, "id", "record ID"); err != nil {
			return tg, err
		}
	}
	return tg, nil
}

// write puts data (or deletes, when data is nil) by the model type's
// strategy.
func (tg target) write(ctx context.Context, data []byte) (Written, error) {
	var v interface{ String() string }
	var err error
	switch {
	case data == nil && tg.t.Strategy == engine.DeviceOwned:
		v, err = tg.l.DeleteOwned(ctx, tg.t.Name, tg.id)
	case data == nil:
		v, err = tg.l.DeleteShared(ctx, tg.t.Name, tg.id)
	case tg.t.Strategy == engine.DeviceOwned:
		v, err = tg.l.PutOwned(ctx, tg.t.Name, tg.id, data)
	default:
		v, err = tg.l.PutShared(ctx, tg.t.Name, tg.id, data)
	}
	if err != nil {
		return Written{}, err
	}
	return Written{Library: tg.l.ID().String(), Model: tg.t.Name, ID: tg.id.String(), Version: v.String()}, nil
}

// recordLimitText is node.MaxRecordSize in words ("1 MiB").
var recordLimitText = fmt.Sprintf("%d MiB", node.MaxRecordSize>>20)

// sizeOK refuses a record value larger than node.MaxRecordSize as CBOR.
func sizeOK(data []byte) error {
	if len(data) > node.MaxRecordSize {
		return &apiError{http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("the record's value takes %d bytes as CBOR, more than the %s (%d bytes) a record may take", len(data), recordLimitText, node.MaxRecordSize)}
	}
	return nil
}

// writable refuses writes of the device model, which pairing manages.
func writable(t engine.ModelType) error {
	if t.Name == node.DeviceModel {
		return &apiError{http.StatusForbidden, "refused", "device records are managed by pairing: use invite, join, leave and remove-device"}
	}
	return nil
}

func (s *Server) getRecord(r *http.Request) (int, any, error) {
	tg, err := s.target(r, false)
	if err != nil {
		return 0, nil, err
	}
	rec, err := tg.l.Get(r.Context(), tg.t.Name, tg.id)
	if err != nil {
		return 0, nil, err
	}
	if rec.Deleted {
		return 0, nil, notFound("record %s %s was deleted at %s", tg.t.Name, tg.id, rec.Version)
	}
	return http.StatusOK, recordJSON(tg.l.ID(), rec), nil
}

func (s *Server) listRecords(r *http.Request) (int, any, error) {
	tg, err := s.target(r, false)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	var opts node.ListOptions
	if v := q.Get("after"); v != "" {
		if opts.After, err = uuid.Parse(v); err != nil {
			return 0, nil, badRequest("after %q is not a record ID", v)
		}
	}
	if v := q.Get("owner"); v != "" {
		if opts.Owner, err = uuid.Parse(v); err != nil {
			return 0, nil, badRequest("owner %q is not a device ID", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		if opts.Limit, err = strconv.Atoi(v); err != nil || opts.Limit < 1 || opts.Limit > 1000 {
			return 0, nil, badRequest("limit %q is not a number from 1 to 1000", v)
		}
	}
	if v := q.Get("deleted"); v != "" {
		if opts.IncludeDeleted, err = strconv.ParseBool(v); err != nil {
			return 0, nil, badRequest("deleted %q is not true or false", v)
		}
	}
	recs, err := tg.l.List(r.Context(), tg.t.Name, opts)
	if err != nil {
		return 0, nil, err
	}
	out := RecordList{Records: make([]Record, 0, len(recs))}
	for _, rec := range recs {
		out.Records = append(out.Records, recordJSON(tg.l.ID(), rec))
	}
	limit := opts.Limit
	if limit == 0 {
		limit = 1000
	}
	if len(recs) == limit {
		out.Next = recs[len(recs)-1].ID.String()
	}
	return http.StatusOK, out, nil
}

func (s *Server) putRecord(r *http.Request) (int, any, error) {
	tg, err := s.target(r, true)
	if err != nil {
		return 0, nil, err
	}
	status := http.StatusOK
	if tg.id == uuid.Nil {
		status, tg.id = http.StatusCreated, uuid.New()
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return 0, nil, err
	}
	data, err := jsonToCBOR(body)
	if err != nil {
		return 0, nil, badRequest("%v", err)
	}
	if err := sizeOK(data); err != nil {
		return 0, nil, err
	}
	w, err := tg.write(r.Context(), data)
	return status, w, err
}

// patchRecord writes some fields of a record of a shared-fields model type:
// the body is a JSON object of the fields to set; a field whose value is
// null is removed; the record's other fields are kept.
func (s *Server) patchRecord(r *http.Request) (int, any, error) {
	tg, err := s.target(r, true)
	if err != nil {
		return 0, nil, err
	}
	if tg.t.Strategy != engine.SharedFields {
		return 0, nil, badRequest("PATCH writes some fields of a record of a shared-fields model type; %q is %s: PUT the whole record", tg.t.Name, tg.t.Strategy)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return 0, nil, err
	}
	data, err := jsonToPatch(body)
	if err != nil {
		return 0, nil, badRequest("%v", err)
	}
	if err := sizeOK(data); err != nil {
		return 0, nil, err
	}
	v, err := tg.l.PatchShared(r.Context(), tg.t.Name, tg.id, data)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, Written{Library: tg.l.ID().String(), Model: tg.t.Name, ID: tg.id.String(), Version: v.String()}, nil
}

func (s *Server) deleteRecord(r *http.Request) (int, any, error) {
	tg, err := s.target(r, true)
	if err != nil {
		return 0, nil, err
	}
	rec, err := tg.l.Get(r.Context(), tg.t.Name, tg.id)
	if err != nil {
		return 0, nil, err
	}
	if rec.Deleted {
		return 0, nil, notFound("record %s %s is already deleted", tg.t.Name, tg.id)
	}
	if tg.t.Strategy == engine.DeviceOwned && rec.Version.DeviceID != s.n.Device() {
		return 0, nil, &apiError{http.StatusForbidden, "refused", fmt.Sprintf("record %s %s is owned by device %s: only its owner deletes it", tg.t.Name, tg.id, rec.Version.DeviceID)}
	}
	w, err := tg.write(r.Context(), nil)
	return http.StatusOK, w, err
}

// MaxBatchRecords is the most records one batch request may write.
const MaxBatchRecords = 1000

// batch checks every record of the batch first (nothing is written if one
// is wrong), then writes them concurrently, so the node stores them in few
// store batches. Each write is durable when the answer comes.
func (s *Server) batch(r *http.Request) (int, any, error) {
	l, err := s.library(r)
	if err != nil {
		return 0, nil, err
	}
	var req BatchRequest
	if err := decodeBody(r, &req, false); err != nil {
		return 0, nil, err
	}
	if len(req.Records) == 0 || len(req.Records) > MaxBatchRecords {
		return 0, nil, badRequest("a batch holds 1 to %d records, this one %d", MaxBatchRecords, len(req.Records))
	}
	type write struct {
		tg   target
		data []byte
	}
	writes := make([]write, len(req.Records))
	for i, br := range req.Records {
		w := write{tg: target{l: l, id: uuid.New()}}
		if w.tg.t, err = s.n.Registry().Lookup(br.Model); err != nil {
			return 0, nil, badRequest("record %d: unknown model type %q", i, br.Model)
		}
		if err := writable(w.tg.t); err != nil {
			return 0, nil, err
		}
		if br.ID != "" {
			if w.tg.id, err = uuid.Parse(br.ID); err != nil {
				return 0, nil, badRequest("record %d: id %q is not a UUID", i, br.ID)
			}
		}
		switch {
		case br.Delete && br.ID == "":
			return 0, nil, badRequest("record %d: a delete needs an id", i)
		case br.Delete && len(br.Data) > 0:
			return 0, nil, badRequest("record %d: a delete carries no data", i)
		case !br.Delete:
			if w.data, err = jsonToCBOR(br.Data); err != nil {
				return 0, nil, badRequest("record %d: %v", i, err)
			}
			if err := sizeOK(w.data); err != nil {
				ae := err.(*apiError)
				return 0, nil, &apiError{ae.status, ae.code, fmt.Sprintf("record %d: %s", i, ae.msg)}
			}
		}
		writes[i] = w
	}
	out := BatchResult{Written: make([]Written, len(writes))}
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, w := range writes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			written, err := w.tg.write(r.Context(), w.data)
			if err != nil {
				errs[i] = fmt.Errorf("record %d (%s %s): %w", i, w.tg.t.Name, w.tg.id, err)
				return
			}
			out.Written[i] = written
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

// ---- the records browser ----

func (s *Server) history(r *http.Request) (int, any, error) {
	tg, err := s.target(r, false)
	if err != nil {
		return 0, nil, err
	}
	h, err := tg.l.History(r.Context(), tg.t.Name, tg.id)
	if err != nil {
		return 0, nil, err
	}
	out := RecordHistory{Library: tg.l.ID().String(), Model: tg.t.Name, ID: tg.id.String(), Strategy: tg.t.Strategy.String(),
		Changes: make([]Change, 0, len(h.Changes)), PrunedUpTo: timePtr(h.PrunedUpTo), Truncated: h.Truncated}
	if !h.Logged {
		out.Note = "a device-owned record keeps its current state only: it has no history"
	}
	for _, c := range h.Changes {
		cj := Change{Version: c.Version.String(), By: c.Version.DeviceID.String(), Type: strings.ToLower(c.Type)}
		if c.Data != nil {
			cj.Data = cborToJSON(c.Data)
		}
		out.Changes = append(out.Changes, cj)
	}
	return http.StatusOK, out, nil
}

func (s *Server) libraryModels(r *http.Request) (int, any, error) {
	l, err := s.library(r)
	if err != nil {
		return 0, nil, err
	}
	counts, err := l.Count(r.Context())
	if err != nil {
		return 0, nil, err
	}
	reg := s.n.Registry()
	out := make([]ModelCount, 0, len(counts))
	for _, c := range counts {
		t, _ := reg.Lookup(c.ModelType)
		out = append(out, ModelCount{Model: Model{Name: t.Name, Strategy: t.Strategy.String(), DependsOn: t.DependsOn}, Records: c.Records, Deleted: c.Deleted})
	}
	return http.StatusOK, out, nil
}

func (s *Server) warnings(*http.Request) (int, any, error) {
	out := []Warning{}
	if s.cfg.Warnings != nil {
		out = append(out, s.cfg.Warnings()...)
	}
	return http.StatusOK, out, nil
}
