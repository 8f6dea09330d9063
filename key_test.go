package runmerge_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/runmerge/runmerge"
)

// keyAlphabet is every character a key secret may hold after its prefix.
const keyAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

func TestKeySecretShape(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		s := runmerge.NewKeySecret()
		if !strings.HasPrefix(s, "rmk_") || len(s) != 43 {
			t.Fatalf("secret %q: want rmk_ and 39 characters", s)
		}
		if strings.Trim(s[4:], keyAlphabet) != "" {
			t.Fatalf("secret %q holds characters outside the alphabet", s)
		}
		if !runmerge.WellFormedKeySecret(s) {
			t.Fatalf("NewKeySecret made %q, which WellFormedKeySecret refuses", s)
		}
		if seen[s] {
			t.Fatalf("secret %q made twice", s)
		}
		seen[s] = true
	}
}

func TestKeySecretHash(t *testing.T) {
	s := runmerge.NewKeySecret()
	sum := sha256.Sum256([]byte(s))
	if got := runmerge.HashKeySecret(s); got != hex.EncodeToString(sum[:]) {
		t.Errorf("HashKeySecret = %s, want the hex SHA-256 of the secret", got)
	}
	if strings.Contains(runmerge.HashKeySecret(s), s[4:]) {
		t.Error("the hash shows the secret")
	}
}

// TestKeySecretMistyped checks that every one-character change to a valid
// key, and every dropped, doubled or swapped character, is refused before
// any lookup.
func TestKeySecretMistyped(t *testing.T) {
	for range 200 {
		s := runmerge.NewKeySecret()
		for _, m := range mistypings(s) {
			if runmerge.WellFormedKeySecret(m) {
				t.Fatalf("%q, a mistyping of %q, passes as well formed", m, s)
			}
		}
	}
}

// mistypings returns every string one slip away from s: each character
// replaced by each other character of the alphabet or by its upper case,
// dropped or doubled, and each pair of neighbours swapped.
func mistypings(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		for _, c := range keyAlphabet + "_" + strings.ToUpper(s[i:i+1]) {
			if byte(c) != s[i] {
				out = append(out, s[:i]+string(c)+s[i+1:])
			}
		}
		out = append(out, s[:i]+s[i+1:], s[:i+1]+s[i:])
		if i+1 < len(s) && s[i] != s[i+1] {
			out = append(out, s[:i]+s[i+1:i+2]+s[i:i+1]+s[i+2:])
		}
	}
	return out
}

func TestKeySecretRefusesOthers(t *testing.T) {
	valid := runmerge.NewKeySecret()
	for _, s := range []string{
		"", "rmk_", "rmk", valid[4:], "RMK_" + valid[4:], "xyz_" + valid[4:],
		" " + valid, valid + " ", valid + "\n", strings.ToUpper(valid),
		"rmk_" + strings.Repeat("a", 39), "rmk_" + strings.Repeat("=", 39),
		"rmk_" + strings.Repeat("a", 400),
	} {
		if runmerge.WellFormedKeySecret(s) {
			t.Errorf("WellFormedKeySecret(%q) = true", s)
		}
	}
}

// FuzzKeySecret checks that the parser never panics, accepts only the
// spelling NewKeySecret writes, and refuses any one-character change to a
// secret it accepts.
func FuzzKeySecret(f *testing.F) {
	for range 4 {
		s := runmerge.NewKeySecret()
		f.Add(s, 5, byte('a'))
		f.Add(s, 42, byte('b'))
		f.Add(s[:42]+"z", 42, byte('7'))
	}
	f.Add("rmk_", 0, byte(0))
	f.Add("", 0, byte('x'))
	f.Fuzz(func(t *testing.T, s string, pos int, c byte) {
		if !runmerge.WellFormedKeySecret(s) {
			return
		}
		if len(s) != 43 || !strings.HasPrefix(s, "rmk_") || strings.Trim(s[4:], keyAlphabet) != "" {
			t.Fatalf("accepted %q, which NewKeySecret cannot write", s)
		}
		if pos < 0 {
			pos = -pos
		}
		pos %= len(s)
		if c == s[pos] {
			return
		}
		m := s[:pos] + string(c) + s[pos+1:]
		if runmerge.WellFormedKeySecret(m) {
			t.Fatalf("accepted %q and %q, one character apart", s, m)
		}
	})
}
