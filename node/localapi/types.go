package localapi

import (
	"encoding/json"
	"time"
)

// The JSON bodies of the API. docs/API.md shows each with an example.

// ErrorBody is the body of every 4xx and 5xx answer.
type ErrorBody struct {
	// Error says what was wrong, in words a person understands.
	Error string `json:"error"`
	// Code is a stable word for programs: bad_request, unauthorized,
	// refused, removed, not_found, conflict, too_large, unreachable,
	// unavailable, timeout, internal (docs/API.md).
	Code string `json:"code"`
}

// NodeInfo describes the node.
type NodeInfo struct {
	Device string   `json:"device"`
	Peer   string   `json:"peer"`
	Name   string   `json:"name"`
	Addrs  []string `json:"addrs"`
	// Version is the sync protocol this node speaks.
	Protocol string `json:"protocol"`
}

// Library names a library.
type Library struct {
	ID string `json:"id"`
	// Name is the library's name on this node (names are unique on a
	// node: a joined library whose name was taken goes by "name (2)").
	Name string `json:"name"`
	// CreatedAt is when the library was created, the same on every member.
	CreatedAt time.Time `json:"created_at"`
	// Removed is present when this device was removed from the library: it
	// no longer syncs it and refuses writes; its records stay readable.
	Removed *Removed `json:"removed,omitempty"`
}

// Removed says who removed this device from a library, and when.
type Removed struct {
	// By is the device that removed this one.
	By string `json:"by"`
	// At is the removal's time, by the remover's clock.
	At time.Time `json:"at"`
	// Version is the removal's HLC (the tombstone of this device's record).
	Version string `json:"version"`
}

// CreateLibraryRequest creates a library.
type CreateLibraryRequest struct {
	Name string `json:"name"`
}

// JoinRequest joins a library with an invite code.
type JoinRequest struct {
	Code string `json:"code"`
}

// InviteRequest asks for an invite code.
type InviteRequest struct {
	// TTL is how long the code is valid, as a Go duration ("1h", "30m");
	// default 1h.
	TTL string `json:"ttl,omitempty"`
	// SingleUse makes the code valid for one join only.
	SingleUse bool `json:"single_use,omitempty"`
	// QR asks for the code as a QR code too (Invite.QRSVG).
	QR bool `json:"qr,omitempty"`
}

// Invite is an invite code.
type Invite struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
	// SingleUse is true when the code admits one device only.
	SingleUse bool `json:"single_use"`
	// QRSVG is the code as a QR code, an SVG image, when asked for.
	QRSVG string `json:"qr_svg,omitempty"`
}

// LeaveRequest leaves a library.
type LeaveRequest struct {
	// DeleteData also deletes this device's copy of the library.
	DeleteData bool `json:"delete_data,omitempty"`
}

// Member is one device of a library.
type Member struct {
	Device string   `json:"device"`
	Peer   string   `json:"peer"`
	Name   string   `json:"name"`
	Addrs  []string `json:"addrs,omitempty"`
	Self   bool     `json:"self,omitempty"`
}

// Peer is the sync state of one other member.
type Peer struct {
	Device string `json:"device"`
	Peer   string `json:"peer"`
	Name   string `json:"name,omitempty"`
	// State is "connecting", "catching up", "live" or "offline".
	State string `json:"state"`
	// Pages and Records count the catch-up in flight.
	Pages   int `json:"pages,omitempty"`
	Records int `json:"records,omitempty"`
	// LagMS is how far behind the peer's reported watermarks this node is.
	LagMS int64 `json:"lag_ms"`
	// LastHeard is when the peer last sent a frame (absent if never).
	LastHeard *time.Time `json:"last_heard,omitempty"`
	// Path is how this node reaches the peer now.
	Path PeerPath `json:"path"`
	// Addrs are the peer's addresses this node knows.
	Addrs []string `json:"addrs,omitempty"`
	// LastDial is when this node last dialled the peer, and LastDialError
	// why that failed (absent when it connected).
	LastDial      *time.Time `json:"last_dial,omitempty"`
	LastDialError string     `json:"last_dial_error,omitempty"`
	// HolePunch counts the hole punches this node retried with the peer.
	HolePunch *HolePunch `json:"hole_punch,omitempty"`
}

// PeerPath is how this node reaches a peer.
type PeerPath struct {
	// Kind is "direct", "relayed", or "" when not connected.
	Kind string `json:"kind"`
	// Text says it in words: "direct (quic-v1)", "relayed via <peer ID>
	// (tcp)", "not connected".
	Text string `json:"text"`
	// Relay is the relay's peer ID of a relayed path; Limited is true when
	// that relay limits it (no sync data).
	Relay   string `json:"relay,omitempty"`
	Limited bool   `json:"limited,omitempty"`
	// Transport is "tcp" or "quic-v1" (to the relay, when relayed); Addr
	// the peer's address on the connection.
	Transport string `json:"transport,omitempty"`
	Addr      string `json:"addr,omitempty"`
}

// HolePunch counts hole punches with one peer.
type HolePunch struct {
	Attempts  int        `json:"attempts"`
	Failures  int        `json:"failures"`
	LastAt    *time.Time `json:"last_at,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	Succeeded *time.Time `json:"succeeded,omitempty"`
}

// Network is where the node stands in the network: GET /v1/network, and
// "network" in GET /v1/status.
type Network struct {
	Listen []string `json:"listen"`
	Addrs  []string `json:"addrs"`
	// Reachability is "public", "private" or "unknown"; Forced is true
	// when the configuration says it (nat.reachability).
	Reachability string `json:"reachability"`
	Forced       bool   `json:"reachability_forced,omitempty"`
	// Reachable and Unreachable are addresses AutoNAT v2 confirmed.
	Reachable   []string `json:"reachable_addrs,omitempty"`
	Unreachable []string `json:"unreachable_addrs,omitempty"`
	// Observed are this node's addresses as peers saw them.
	Observed []string `json:"observed_addrs,omitempty"`
	// NAT is "none", "endpoint-independent", "symmetric" or "unknown",
	// told from ObservedBy: "<transport/local port> seen by <peer IP> as
	// <ip:port>".
	NAT         string      `json:"nat"`
	ObservedBy  []string    `json:"observed_by,omitempty"`
	PortMapping PortMapping `json:"port_mapping"`
	AutoRelay   bool        `json:"auto_relay"`
	// Relays are the relays this node holds a reservation with.
	Relays         []RelayReservation `json:"relays"`
	HolePunching   bool               `json:"hole_punching"`
	HolePunchAddrs []string           `json:"hole_punch_addrs,omitempty"`
	// RelayService is present when this node runs the relay service.
	RelayService *RelayService `json:"relay_service,omitempty"`
}

// PortMapping is the state of UPnP / NAT-PMP port mapping.
type PortMapping struct {
	Enabled     bool `json:"enabled"`
	RouterFound bool `json:"router_found"`
	// Mappings map a listen address to the router's public address.
	Mappings []Mapping `json:"mappings,omitempty"`
}

// Mapping is one port mapping.
type Mapping struct {
	Internal string `json:"internal"`
	External string `json:"external"`
}

// RelayReservation is a relay this node holds a slot with.
type RelayReservation struct {
	Relay string   `json:"relay"`
	Addrs []string `json:"addrs,omitempty"`
	// Member is true when the relay is a member of one of this node's
	// libraries: its circuits carry sync traffic.
	Member bool `json:"member"`
}

// RelayService counts what this node's relay service does.
type RelayService struct {
	// Strangers is "limited" or "off".
	Strangers string `json:"strangers"`
	// Members and StrangersUse count reservations, open circuits, refused
	// requests and bytes relayed, of members and of strangers.
	Members      RelayClass `json:"members"`
	StrangersUse RelayClass `json:"strangers_use"`
	// StrangerCircuits counts open circuits from strangers to members.
	StrangerCircuits int `json:"stranger_circuits_to_members"`
}

// RelayClass counts one class of the relay's users.
type RelayClass struct {
	Reservations int   `json:"reservations"`
	Circuits     int   `json:"circuits"`
	Refused      int   `json:"refused"`
	Bytes        int64 `json:"bytes"`
}

// Doctor is the answer of GET /v1/doctor.
type Doctor struct {
	Checks []Check `json:"checks"`
	// Failed counts the checks with status "fail".
	Failed int `json:"failed"`
}

// Check is one finding of the doctor.
type Check struct {
	// Area is "node" or "library <name>".
	Area string `json:"area"`
	Name string `json:"name"`
	// Status is "ok", "info", "warn" or "fail".
	Status  string `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Backfill is the progress of a library's initial backfill after a join.
type Backfill struct {
	Expected int       `json:"expected"`
	Received int       `json:"received"`
	Started  time.Time `json:"started"`
	Done     bool      `json:"done"`
}

// LibraryStatus is the state of one library.
type LibraryStatus struct {
	Library
	Members      []Member   `json:"members"`
	Peers        []Peer     `json:"peers"`
	Quarantined  int        `json:"quarantined"`
	LogEntries   int        `json:"log_entries"`
	PrunedUpTo   *time.Time `json:"pruned_up_to,omitempty"`
	HorizonHours float64    `json:"horizon_hours"`
	Received     int        `json:"received"`
	Backfill     *Backfill  `json:"backfill,omitempty"`
	// CaughtUp is true when no catch-up is in flight and a peer is live.
	CaughtUp bool `json:"caught_up"`
}

// DiscoverySource is what one discovery source found.
type DiscoverySource struct {
	Name    string   `json:"name"`
	Enabled bool     `json:"enabled"`
	Found   int      `json:"found"`
	Recent  []string `json:"recent,omitempty"`
	// RoutingTable is the DHT's routing table size (DHT only).
	RoutingTable int    `json:"routing_table,omitempty"`
	LastError    string `json:"last_error,omitempty"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	Node      NodeInfo          `json:"node"`
	Libraries []LibraryStatus   `json:"libraries"`
	Discovery []DiscoverySource `json:"discovery"`
	Network   Network           `json:"network"`
}

// Record is one record.
type Record struct {
	Library string `json:"library"`
	Model   string `json:"model"`
	ID      string `json:"id"`
	// Version is the HLC of the write that made this state, as
	// hlc.HLC.String writes it: "timestamp:counter:device".
	Version string `json:"version"`
	// By is the device that wrote it.
	By      string          `json:"by"`
	Deleted bool            `json:"deleted,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	// Fields, for a shared-fields model type, holds the version of each
	// field the record shows (the HLC of the write that set it).
	Fields map[string]string `json:"fields,omitempty"`
}

// Written answers a put or delete.
type Written struct {
	Library string `json:"library"`
	Model   string `json:"model"`
	ID      string `json:"id"`
	Version string `json:"version"`
}

// RecordList is a page of records; Next, if set, is the After of the next
// page.
type RecordList struct {
	Records []Record `json:"records"`
	Next    string   `json:"next,omitempty"`
}

// Event is one record event of the server-sent-events stream.
type Event struct {
	// EventID names the event for a client that reconnects: send it as
	// Last-Event-ID (or ?since=) to resume after it. It is also the SSE
	// "id:" line.
	EventID string `json:"event_id,omitempty"`
	// Type is "changed" or "deleted"; "resync" says that events may have
	// been lost before this point (Reason says why): re-read what matters.
	Type    string          `json:"type"`
	Library string          `json:"library"`
	Model   string          `json:"model,omitempty"`
	ID      string          `json:"id,omitempty"`
	By      string          `json:"by,omitempty"`
	Version string          `json:"version,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	// Fields, for a shared-fields model type, names the fields whose shown
	// value the change set, changed or removed.
	Fields []string `json:"fields,omitempty"`
	// Missed counts events lost just before this one because the client
	// read too slowly; re-read what matters with GET, or reconnect with the
	// last event ID.
	Missed int `json:"missed,omitempty"`
	// Reason says why a resync event came.
	Reason string `json:"reason,omitempty"`
}

// Model is one model type and its strategy.
type Model struct {
	Name      string   `json:"name"`
	Strategy  string   `json:"strategy"`
	DependsOn []string `json:"depends_on,omitempty"`
}

// BatchRequest writes up to MaxBatchRecords records in one request.
type BatchRequest struct {
	Records []BatchRecord `json:"records"`
}

// BatchRecord is one write of a batch: a put (Data set) or, with Delete, a
// delete. An empty ID makes a new record.
type BatchRecord struct {
	Model  string          `json:"model"`
	ID     string          `json:"id,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Delete bool            `json:"delete,omitempty"`
}

// BatchResult answers a batch: one Written per record, in order.
type BatchResult struct {
	Written []Written `json:"written"`
}

// ModelCount is a model type with the number of records a library holds
// of it.
type ModelCount struct {
	Model
	// Records counts the live records, Deleted the tombstones.
	Records int `json:"records"`
	Deleted int `json:"deleted"`
}

// RecordHistory is what the log holds of one record.
type RecordHistory struct {
	Library  string `json:"library"`
	Model    string `json:"model"`
	ID       string `json:"id"`
	Strategy string `json:"strategy"`
	// Changes are the record's changes the log still holds, oldest first.
	Changes []Change `json:"changes"`
	// PrunedUpTo, when present, is the newest point up to which the model
	// type's log was pruned: changes made at or before it may be gone.
	PrunedUpTo *time.Time `json:"pruned_up_to,omitempty"`
	// Truncated is true when the log was too long to read whole
	// (node.MaxHistoryScan entries): older changes may be missing.
	Truncated bool `json:"truncated,omitempty"`
	// Note says why there is no history (device-owned records).
	Note string `json:"note,omitempty"`
}

// Change is one change of a shared record.
type Change struct {
	// Version is the change's HLC, "timestamp:counter:device"; By the
	// device that made it.
	Version string `json:"version"`
	By      string `json:"by"`
	// Type is "insert", "update" or "delete".
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Warning is one warning of the daemon's log.
type Warning struct {
	Time time.Time `json:"time"`
	// Level is "WARN" or "ERROR".
	Level   string `json:"level"`
	Message string `json:"message"`
	// Attrs are the record's attributes, as text.
	Attrs map[string]string `json:"attrs,omitempty"`
}
