package webhook

import (
	"net/netip"
	"testing"
)

// FuzzCheckAddr checks the dial-time guard on any 16-byte address read both as
// IPv6 and (its first four bytes) as IPv4: an address the default configuration
// allows is in no forbidden range, nor embeds an IPv4 address that is; one it
// refuses is in one; AllowPrivate adds loopback and private addresses and never
// a link-local one.
func FuzzCheckAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "169.254.169.254", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe",
		"2002:7f00:1::", "2001:0:4136:e378:8000:63bf:80ff:fffe", "fd00:ec2::254", "8.8.8.8", "2606:4700::1111", "::"} {
		b := netip.MustParseAddr(s).As16()
		f.Add(b[:])
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) < 16 {
			raw = append(raw, make([]byte, 16-len(raw))...)
		}
		v6 := netip.AddrFrom16([16]byte(raw[:16]))
		v4 := netip.AddrFrom4([4]byte(raw[:4]))
		for _, ip := range []netip.Addr{v6, v4, v6.WithZone("eth0")} {
			err := Config{}.CheckAddr(ip)
			plain := ip.Unmap().WithZone("")
			if err == nil {
				if forbidden(plain) {
					t.Fatalf("%v is in a forbidden range but was allowed", ip)
				}
				if e, ok := embeddedIPv4(plain); ok && forbidden(e) {
					t.Fatalf("%v embeds forbidden %v but was allowed", ip, e)
				}
			} else if !forbidden(plain) {
				if e, ok := embeddedIPv4(plain); !ok || !forbidden(e) {
					t.Fatalf("%v was refused (%v) but is in no forbidden range", ip, err)
				}
			}
			err = (Config{AllowPrivate: true}).CheckAddr(ip)
			if err == nil && inAny(neverPrefixes, plain) {
				t.Fatalf("AllowPrivate allowed link-local %v", ip)
			}
			if err != nil && inAny(privatePrefixes, plain) && !inAny(neverPrefixes, plain) {
				t.Fatalf("AllowPrivate refused private %v: %v", ip, err)
			}
		}
	})
}
