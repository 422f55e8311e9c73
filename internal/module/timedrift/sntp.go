package timedrift

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// SNTP packet layout (RFC 4330 section 4).
const (
	packetSize   = 48
	ntpVersion   = 4
	modeClient   = 3
	modeServer   = 4
	modeBcast    = 5
	leapNotSync  = 3
	offReference = 16
	offOriginate = 24
	offReceive   = 32
	offTransmit  = 40
)

// ntpEpochOffset is the number of seconds from 1900-01-01 (NTP era 0) to
// 1970-01-01.
const ntpEpochOffset = 2208988800

// ErrBadReply is wrapped by errors about an SNTP reply that must be
// ignored.
var ErrBadReply = errors.New("bad sntp reply")

// Measurement is one SNTP exchange with a server.
type Measurement struct {
	// Offset is how far the server's clock is ahead of the local one
	// (negative when the local clock is ahead).
	Offset time.Duration
	// Delay is the round-trip delay of the exchange.
	Delay time.Duration
	// ServerTime is the server's transmit time.
	ServerTime time.Time
	// Stratum is the server's stratum.
	Stratum int
}

// toNTP encodes t as a 64-bit NTP timestamp.
func toNTP(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := (uint64(t.Nanosecond()) << 32) / 1e9
	return secs<<32 | frac
}

// fromNTP decodes a 64-bit NTP timestamp, picking the era (RFC 4330 section
// 3) that puts it closest to the reference time near.
func fromNTP(ts uint64, near time.Time) time.Time {
	secs := int64(ts >> 32)
	nsec := int64(((ts & 0xffffffff) * 1e9) >> 32)
	t := time.Unix(secs-ntpEpochOffset, nsec)
	const era = int64(1) << 32
	for t.Sub(near) > time.Duration(era/2)*time.Second {
		t = t.Add(-time.Duration(era) * time.Second)
	}
	for near.Sub(t) > time.Duration(era/2)*time.Second {
		t = t.Add(time.Duration(era) * time.Second)
	}
	return t
}

// Query asks one SNTP server at addr (host:port) for its time and measures
// the local clock's offset. The request's transmit timestamp is random, and
// a reply counts only if it echoes it as its originate timestamp, so that a
// stale or forged reply is refused.
func Query(ctx context.Context, addr string) (Measurement, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return Measurement{}, fmt.Errorf("sntp %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return Measurement{}, fmt.Errorf("sntp %s: %w", addr, err)
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := make([]byte, packetSize)
	req[0] = ntpVersion<<3 | modeClient
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return Measurement{}, fmt.Errorf("sntp %s: %w", addr, err)
	}
	copy(req[offTransmit:], nonce[:])
	t1 := time.Now()
	if _, err := conn.Write(req); err != nil {
		return Measurement{}, fmt.Errorf("sntp %s: %w", addr, err)
	}
	buf := make([]byte, 512)
	for {
		n, err := conn.Read(buf)
		t4 := time.Now()
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				err = ctx.Err()
			case errors.As(err, &ne) && ne.Timeout():
				err = context.DeadlineExceeded
			}
			return Measurement{}, fmt.Errorf("sntp %s: no answer: %w", addr, err)
		}
		m, err := parseReply(buf[:n], nonce[:], t1, t4)
		if errors.Is(err, errNotOurs) {
			continue
		}
		if err != nil {
			return Measurement{}, fmt.Errorf("sntp %s: %w", addr, err)
		}
		return m, nil
	}
}

// errNotOurs marks a reply to another request, which is ignored.
var errNotOurs = fmt.Errorf("%w: originate timestamp is not our request's", ErrBadReply)

// parseReply checks an SNTP reply to the request whose transmit timestamp
// was nonce, sent at t1 and received at t4 by the local clock, and computes
// the offset and delay (RFC 4330 section 5).
func parseReply(p, nonce []byte, t1, t4 time.Time) (Measurement, error) {
	if len(p) < packetSize {
		return Measurement{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrBadReply, len(p), packetSize)
	}
	if string(p[offOriginate:offOriginate+8]) != string(nonce) {
		return Measurement{}, errNotOurs
	}
	leap, version, mode := p[0]>>6, (p[0]>>3)&7, p[0]&7
	stratum := int(p[1])
	switch {
	case mode != modeServer && mode != modeBcast:
		return Measurement{}, fmt.Errorf("%w: mode %d", ErrBadReply, mode)
	case version < 1 || version > 4:
		return Measurement{}, fmt.Errorf("%w: version %d", ErrBadReply, version)
	case stratum == 0:
		return Measurement{}, fmt.Errorf("%w: kiss-o'-death %q", ErrBadReply, p[12:16])
	case stratum > 15:
		return Measurement{}, fmt.Errorf("%w: stratum %d", ErrBadReply, stratum)
	case leap == leapNotSync:
		return Measurement{}, fmt.Errorf("%w: server clock not synchronized", ErrBadReply)
	}
	rx := binary.BigEndian.Uint64(p[offReceive:])
	tx := binary.BigEndian.Uint64(p[offTransmit:])
	if rx == 0 || tx == 0 {
		return Measurement{}, fmt.Errorf("%w: zero receive or transmit timestamp", ErrBadReply)
	}
	t2, t3 := fromNTP(rx, t1), fromNTP(tx, t4)
	return Measurement{
		Offset:     (t2.Sub(t1) + t3.Sub(t4)) / 2,
		Delay:      t4.Sub(t1) - t3.Sub(t2),
		ServerTime: t3,
		Stratum:    stratum,
	}, nil
}
