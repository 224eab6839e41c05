package localapi

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/relayservice"
)

// collector reads the node's state at scrape time: nothing is counted twice
// and nothing runs between scrapes.
type collector struct {
	n *node.Node

	peerState, peerLag, quarantined, logEntries, prunedUpTo *prometheus.Desc
	received, backfillExpected, backfillReceived            *prometheus.Desc
	dropped, refused, engineRefused                         *prometheus.Desc
	messages, bytes                                         *prometheus.Desc
	pages, records, pruneRounds, quarantinedTotal, released *prometheus.Desc
	up                                                      *prometheus.Desc
	reachability, natKind, relays, peerPath, holePunches    *prometheus.Desc
	relayReservations, relayCircuits, relayBytes            *prometheus.Desc
}

func newCollector(n *node.Node) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("syncnode_"+name, help, labels, nil)
	}
	return &collector{
		n:                 n,
		peerState:         d("peer_state", "1 for the sync state each member peer is in (connecting, catching up, live, offline).", "library", "device", "state"),
		peerLag:           d("peer_lag_seconds", "How far this node is behind the watermarks a peer reported.", "library", "device"),
		quarantined:       d("quarantined_changes", "Received changes held back because their clock is too far ahead.", "library"),
		logEntries:        d("log_entries", "Shared changes kept in the log, not yet pruned.", "library"),
		prunedUpTo:        d("log_pruned_up_to_timestamp_seconds", "The newest point up to which a stream's log was pruned.", "library"),
		received:          d("received_total", "Records and changes received from other devices since start.", "library"),
		backfillExpected:  d("backfill_expected_records", "Records the inviter held when this device joined.", "library"),
		backfillReceived:  d("backfill_received_records", "Records and changes received since the join.", "library"),
		dropped:           d("live_dropped_total", "Live messages dropped because a peer's send queue was full (caught up later)."),
		refused:           d("refusals_total", "Streams and messages refused by the node, by reason.", "reason"),
		engineRefused:     d("engine_refusals_total", "Messages refused by the sync rules, by reason.", "reason"),
		messages:          d("messages_total", "Sync protocol messages, by type and direction.", "type", "direction"),
		bytes:             d("message_bytes_total", "Bytes of sync protocol frames, by message type and direction.", "type", "direction"),
		pages:             d("catchup_pages_applied_total", "Catch-up pages applied."),
		records:           d("catchup_records_applied_total", "Records and log entries applied from catch-up pages."),
		pruneRounds:       d("prune_rounds_total", "Prune rounds that moved a prune point."),
		quarantinedTotal:  d("quarantined_total", "Messages put in quarantine since start."),
		released:          d("quarantine_released_total", "Quarantined messages applied once the clock caught up."),
		up:                d("up", "1 while the node answers."),
		reachability:      d("reachability", "1 for whether peers on the internet can dial this node: public, private or unknown.", "state"),
		natKind:           d("nat_kind", "1 for the NAT's kind as peers' observations tell it: none, endpoint-independent, symmetric or unknown.", "kind"),
		relays:            d("relay_reservations", "Relays this node holds a reservation with; member is true for members of its libraries.", "member"),
		peerPath:          d("peer_path", "1 for how this node reaches each member peer: direct, relayed, limited (a stranger's relay) or none.", "library", "device", "path"),
		holePunches:       d("hole_punches_total", "Hole punches this node retried with members, by result (attempt, failure).", "result"),
		relayReservations: d("relay_service_reservations", "Reservations the relay service holds, by class (member, stranger).", "class"),
		relayCircuits:     d("relay_service_circuits", "Circuits open through the relay service, by class.", "class"),
		relayBytes:        d("relay_service_bytes_total", "Bytes the relay service relayed, by class.", "class"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	es, err := c.n.EngineStats(ctx)
	if err != nil {
		gauge(c.up, 0)
		return
	}
	gauge(c.up, 1)
	counter(c.pages, float64(es.PagesApplied))
	counter(c.records, float64(es.RecordsApplied))
	counter(c.pruneRounds, float64(es.Pruned))
	counter(c.quarantinedTotal, float64(es.Quarantined))
	counter(c.released, float64(es.Released))
	for reason, v := range es.Refused {
		counter(c.engineRefused, float64(v), reason)
	}
	m := c.n.Metrics()
	counter(c.dropped, float64(m.Dropped))
	for reason, v := range m.Refused {
		counter(c.refused, float64(v), reason)
	}
	for k, v := range m.Messages {
		counter(c.messages, float64(v.Count), k.Type, k.Direction)
		counter(c.bytes, float64(v.Bytes), k.Type, k.Direction)
	}
	net := c.n.Network()
	for _, st := range []string{"public", "private", "unknown"} {
		gauge(c.reachability, boolValue(net.Reachability == st), st)
	}
	for _, k := range []string{node.NATNone, node.NATEndpointIndependent, node.NATSymmetric, node.NATUnknown} {
		gauge(c.natKind, boolValue(net.NATKind == k), k)
	}
	members := 0
	for _, r := range net.Relays {
		if r.Member {
			members++
		}
	}
	gauge(c.relays, float64(members), "true")
	gauge(c.relays, float64(len(net.Relays)-members), "false")
	if rs := net.RelayService; rs != nil {
		for class, cs := range map[string]relayservice.ClassStatus{"member": rs.Members, "stranger": rs.Strangers} {
			gauge(c.relayReservations, float64(cs.Reservations), class)
			gauge(c.relayCircuits, float64(cs.Circuits), class)
			counter(c.relayBytes, float64(cs.Bytes), class)
		}
	}
	libs, err := c.n.Libraries()
	if err != nil {
		return
	}
	var punches, punchFailures int
	punched := map[string]bool{} // a peer in two libraries counts once
	defer func() {
		counter(c.holePunches, float64(punches), "attempt")
		counter(c.holePunches, float64(punchFailures), "failure")
	}()
	for _, li := range libs {
		st, err := c.n.Library(li.ID).Status(ctx)
		if err != nil {
			continue
		}
		lib := li.ID.String()
		for _, p := range st.Peers {
			for _, s := range []string{"connecting", "catching up", "live", "offline"} {
				v := 0.0
				if p.State == s {
					v = 1
				}
				gauge(c.peerState, v, lib, p.Device.String(), s)
			}
			gauge(c.peerLag, p.Lag.Seconds(), lib, p.Device.String())
			path := p.Reach.Path.Kind
			switch {
			case path == "":
				path = "none"
			case p.Reach.Path.Limited:
				path = "limited"
			}
			for _, s := range []string{"direct", "relayed", "limited", "none"} {
				gauge(c.peerPath, boolValue(path == s), lib, p.Device.String(), s)
			}
			if hp := p.Reach.HolePunch; hp != nil && !punched[p.Peer.String()] {
				punched[p.Peer.String()] = true
				punches += hp.Attempts
				punchFailures += hp.Failures
			}
		}
		gauge(c.quarantined, float64(st.Quarantined), lib)
		gauge(c.logEntries, float64(st.LogEntries), lib)
		if !st.PrunedUpTo.IsZero() {
			gauge(c.prunedUpTo, float64(st.PrunedUpTo.Unix()), lib)
		}
		counter(c.received, float64(st.Received), lib)
		if b := st.Backfill; b != nil {
			gauge(c.backfillExpected, float64(b.Expected), lib)
			gauge(c.backfillReceived, float64(b.Received), lib)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
