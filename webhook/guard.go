package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/runmerge/runmerge"
)

// Guard keeps deliveries away from the server's own network: loopback,
// private, link-local, unique-local, carrier-grade NAT, multicast,
// unspecified and reserved addresses, in IPv4, in IPv6 and in the IPv6 forms
// that carry an IPv4 address. It checks a URL when it is saved (resolving
// its host) and checks the address again when a connection is dialled, so a
// name that resolves to a public address when saved and to a private one
// later (DNS rebinding) is still refused.
type Guard struct {
	// AllowPrivate turns the address checks off, for operators whose
	// receivers live on their own network (webhooks.allow_private).
	AllowPrivate bool

	// Resolver looks up host names when a URL is saved; nil uses the
	// system's resolver.
	Resolver *net.Resolver

	// allowAddr, when set, lets one exact address through although it is
	// private; tests use it to stand a receiver on loopback.
	allowAddr func(netip.AddrPort) bool
}

// ErrAddressRefused is the cause of every refusal of an address.
var ErrAddressRefused = errors.New("address refused: loopback, private, link-local or reserved")

// refusedPrefixes are the ranges, beyond what netip.Addr's own predicates
// know, that a delivery may never reach.
var refusedPrefixes = mustPrefixes(
	"0.0.0.0/8",       // "this network"
	"100.64.0.0/10",   // carrier-grade NAT
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation
	"203.0.113.0/24",  // documentation
	"240.0.0.0/4",     // reserved, and the broadcast address
	"::/96",           // IPv4-compatible, with :: and ::1
	"::ffff:0:0/96",   // IPv4-mapped
	"::ffff:0:0:0/96", // IPv4-translated
	"64:ff9b:1::/48",  // local-use NAT64
	"100::/64",        // discard
	"2001::/32",       // Teredo
	"2001:db8::/32",   // documentation
	"fec0::/10",       // site-local (deprecated)
	"fc00::/7",        // unique-local
)

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

func mustPrefixes(list ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(list))
	for i, s := range list {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Refused reports whether a delivery may not reach address a.
func Refused(a netip.Addr) bool {
	if a.Zone() != "" {
		return true
	}
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsPrivate() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() ||
		a.IsMulticast() {
		return true
	}
	for _, p := range refusedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	// IPv6 addresses that route to an embedded IPv4 address are as good as
	// that address.
	b := a.As16()
	switch {
	case a.Is6() && nat64.Contains(a):
		return Refused(netip.AddrFrom4([4]byte(b[12:16])))
	case a.Is6() && sixToFour.Contains(a):
		return Refused(netip.AddrFrom4([4]byte(b[2:6])))
	}
	return false
}

// numericHost matches host names made of numbers only, such as 2130706433,
// 0x7f000001, 0177.0.0.1 or 127.1: IPv4 addresses in forms some resolvers
// accept. No real host name ends in a numeric label, so they are refused
// rather than guessed at.
var numericHost = regexp.MustCompile(`(?i)^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$`)

// CheckURL checks a webhook URL before it is saved: an absolute http or
// https URL without credentials, whose host is a public address or a name
// whose every address is public. The error is an EINVALID *runmerge.Error
// pointing at pointer.
func (g *Guard) CheckURL(ctx context.Context, raw, pointer string) error {
	bad := func(detail string) error {
		return &runmerge.Error{Code: runmerge.EINVALID, Message: "the webhook URL is not allowed",
			Fields: []runmerge.FieldError{{Pointer: pointer, Code: "invalid_url", Detail: detail}}}
	}
	if len(raw) > 2048 {
		return bad("must be at most 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return bad("must be an absolute http or https URL")
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return bad("the scheme must be http or https")
	}
	if u.User != nil {
		return bad("must not carry a user name or password; receivers check the signature instead")
	}
	host := u.Hostname()
	if host == "" {
		return bad("must name a host")
	}
	if p := u.Port(); p != "" {
		if n, err := parsePort(p); err != nil || n == 0 {
			return bad("the port must be from 1 to 65535")
		}
	}
	if g.AllowPrivate {
		return nil
	}

	if a, err := netip.ParseAddr(host); err == nil {
		if Refused(a) {
			return bad("the address is loopback, private, link-local or reserved")
		}
		return nil
	}
	if strings.Contains(host, "%") || strings.Contains(host, ":") {
		return bad("the host is not a valid address")
	}
	lower := strings.TrimSuffix(strings.ToLower(host), ".")
	if numericHost.MatchString(lower) {
		return bad("an IP address must be written in standard dotted form")
	}
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") {
		return bad("the host resolves to a loopback address")
	}

	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return bad("the host name does not resolve")
	}
	for _, a := range addrs {
		if Refused(a) {
			return bad("the host resolves to a loopback, private, link-local or reserved address")
		}
	}
	return nil
}

func parsePort(s string) (int, error) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' || n > 65535 {
			return 0, errors.New("bad port")
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, errors.New("bad port")
	}
	return n, nil
}

// control is the dialer's hook, run for every address a connection is
// about to be made to, after name resolution: the place where the address
// actually dialled is checked.
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("dial %s %s: only TCP is allowed", network, address)
	}
	if g.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, ErrAddressRefused)
	}
	if g.allowAddr != nil && g.allowAddr(ap) {
		return nil
	}
	if Refused(ap.Addr()) {
		return fmt.Errorf("dial %s: %w", address, ErrAddressRefused)
	}
	return nil
}

// NewHTTPClient returns the client deliveries are sent with: every dial
// checked by the guard, no proxy from the environment (a proxy would dial
// for us, past the check), no redirects followed, and timeout on the whole
// exchange. perHost bounds the idle connections kept to each receiver.
func (g *Guard) NewHTTPClient(timeout time.Duration, perHost int) *http.Client {
	dialer := &net.Dialer{
		Timeout:   min(timeout, 10*time.Second),
		KeepAlive: 30 * time.Second,
		Control:   g.control,
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
