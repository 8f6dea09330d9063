package runmerge

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"strings"
	"time"
)

// Roles a key can carry.
const (
	RoleAdmin        = "admin"
	RoleEventManager = "event_manager"
	RoleReadOnly     = "read_only"
)

// ValidRole reports whether r is a role.
func ValidRole(r string) bool {
	return r == RoleAdmin || r == RoleEventManager || r == RoleReadOnly
}

// Key is an API key as the catalog keeps it. The secret itself is never kept:
// only its hash, from which it cannot be recovered.
type Key struct {
	ID         string
	Name       string
	TenantID   string // empty for a platform key
	Role       string
	EventIDs   []string // the events an event manager may reach
	Hash       string   // hex SHA-256 of the secret
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
}

// Platform reports whether the key works across tenants.
func (k *Key) Platform() bool { return k.TenantID == "" }

// Usable reports whether the key may authenticate at time now.
func (k *Key) Usable(now time.Time) bool {
	if k.RevokedAt != nil {
		return false
	}
	return k.ExpiresAt == nil || now.Before(*k.ExpiresAt)
}

// Key secrets look like "rmk_" followed by 39 characters of lower-case
// base32: 20 random bytes (160 bits) and a 4-byte CRC-32 of them. The
// checksum lets a mistyped or truncated key be refused without a lookup.
const (
	keyPrefix     = "rmk_"
	keyRandomLen  = 20
	keyEncodedLen = 39 // base32 of 24 bytes without padding
)

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewKeySecret returns a new random key secret.
func NewKeySecret() string {
	var b [keyRandomLen + 4]byte
	if _, err := rand.Read(b[:keyRandomLen]); err != nil {
		panic("runmerge: crypto/rand failed: " + err.Error())
	}
	binary.BigEndian.PutUint32(b[keyRandomLen:], crc32.ChecksumIEEE(b[:keyRandomLen]))
	return keyPrefix + keyEncoding.EncodeToString(b[:])
}

// WellFormedKeySecret reports whether s has the shape of a key secret and its
// checksum holds. It does not say whether such a key exists.
func WellFormedKeySecret(s string) bool {
	if len(s) != len(keyPrefix)+keyEncodedLen || !strings.HasPrefix(s, keyPrefix) {
		return false
	}
	var b [keyRandomLen + 4]byte
	text := s[len(keyPrefix):]
	if n, err := keyEncoding.Decode(b[:], []byte(text)); err != nil || n != len(b) {
		return false
	}
	// The last character carries two bits beyond the 24 bytes, which the
	// decoder ignores. Only the one spelling NewKeySecret writes is a key,
	// or a mistyped last character would pass the checksum.
	var canonical [keyEncodedLen]byte
	keyEncoding.Encode(canonical[:], b[:])
	if string(canonical[:]) != text {
		return false
	}
	return binary.BigEndian.Uint32(b[keyRandomLen:]) == crc32.ChecksumIEEE(b[:keyRandomLen])
}

// HashKeySecret returns the hash under which a secret is stored. Secrets carry
// 160 random bits, so a plain SHA-256 cannot be reversed or guessed; a slow
// password hash would add cost to every request and no safety.
func HashKeySecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
