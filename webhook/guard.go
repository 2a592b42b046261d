package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// ErrForbiddenAddress is returned (wrapped) when a webhook's resolved address is
// internal and not allowed by the configuration. No connection was made.
var ErrForbiddenAddress = errors.New("webhook: destination address is not allowed")

// forbiddenPrefixes are the ranges a webhook may not reach by default: the host
// itself, private networks, link-local (cloud metadata at 169.254.169.254 and
// fd00:ec2::254 included), CGNAT, multicast, broadcast and reserved space.
var forbiddenPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network", unspecified
		"10.0.0.0/8",      // RFC 1918
		"100.64.0.0/10",   // CGNAT
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata
		"172.16.0.0/12",   // RFC 1918
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // TEST-NET-1
		"192.88.99.0/24",  // 6to4 relay anycast
		"192.168.0.0/16",  // RFC 1918
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // TEST-NET-2
		"203.0.113.0/24",  // TEST-NET-3
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, broadcast
		"::/128",          // unspecified
		"::1/128",         // loopback
		"100::/64",        // discard
		"2001:db8::/32",   // documentation
		"64:ff9b:1::/48",  // local-use NAT64
		"fc00::/7",        // unique local (fd00:ec2::254 included)
		"fe80::/10",       // link-local
		"fec0::/10",       // site-local (deprecated)
		"ff00::/8",        // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
	teredo = netip.MustParsePrefix("2001::/32")
	compat = netip.MustParsePrefix("::/96") // IPv4-compatible (deprecated)
)

// privatePrefixes are all that AllowPrivate opens: loopback and the private
// ranges (RFC 1918, IPv6 unique local). Link-local, CGNAT, "this network" and
// the rest stay closed.
var privatePrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// neverPrefixes are refused whatever the configuration: link-local addresses,
// where clouds answer with instance credentials (169.254.169.254, and AWS's
// IPv6 metadata endpoint fd00:ec2::254, which lies inside the unique-local range
// that AllowPrivate opens).
var neverPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{"169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// CheckAddr reports whether a webhook may connect to ip under c: nil when allowed,
// an error wrapping ErrForbiddenAddress when not. IPv6 forms that embed an IPv4
// address (mapped, compatible, NAT64, 6to4, Teredo) are judged by that address too.
// Link-local and cloud metadata addresses are refused under any configuration;
// AllowPrivate opens loopback and private ranges only; AllowCIDRs open what they
// name.
func (c Config) CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return fmt.Errorf("%w: %v", ErrForbiddenAddress, ip)
	}
	v4, embeds := embeddedIPv4(ip)
	if inAny(neverPrefixes, ip) || (embeds && inAny(neverPrefixes, v4)) {
		return fmt.Errorf("%w: %v is link-local or a cloud metadata address", ErrForbiddenAddress, ip)
	}
	if c.allowed(ip) || c.opens(ip) {
		return nil
	}
	if forbidden(ip) {
		return fmt.Errorf("%w: %v", ErrForbiddenAddress, ip)
	}
	if embeds && !c.allowed(v4) && forbidden(v4) && !c.opens(v4) {
		return fmt.Errorf("%w: %v embeds %v", ErrForbiddenAddress, ip, v4)
	}
	return nil
}

// opens reports whether AllowPrivate opens ip.
func (c Config) opens(ip netip.Addr) bool { return c.AllowPrivate && inAny(privatePrefixes, ip) }

func inAny(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (c Config) allowed(ip netip.Addr) bool {
	for _, p := range c.AllowCIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func forbidden(ip netip.Addr) bool { return inAny(forbiddenPrefixes, ip) }

func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip), compat.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixTo4.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case teredo.Contains(ip):
		// The client address is stored inverted in the last four bytes.
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}), true
	}
	return netip.Addr{}, false
}

// control is the net.Dialer.Control hook: it runs after name resolution and
// before connect(2), on the address actually dialed, so neither a host name that
// resolves to an internal address nor DNS rebinding between check and use can get
// round it.
func (c Config) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse %q", ErrForbiddenAddress, address)
	}
	return c.CheckAddr(ap.Addr())
}
