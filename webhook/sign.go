package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Secrets are "whsec_" followed by the base64 of secretBytes random bytes,
// the form the Standard Webhooks libraries read: they sign with the bytes
// the base64 part decodes to.
const (
	secretPrefix = "whsec_"
	secretBytes  = 32
)

// NewSecret returns a new random signing secret.
func NewSecret() string {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		panic("webhook: crypto/rand failed: " + err.Error())
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b)
}

// secretKey returns the HMAC key of a secret: the bytes its base64 part
// decodes to.
func secretKey(secret string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil || len(b) == 0 {
		return nil, errors.New("webhook: malformed signing secret")
	}
	return b, nil
}

// Signature returns the webhook-signature header of a delivery under the
// Standard Webhooks scheme: "v1," and the base64 HMAC-SHA256, keyed by the
// secret, of the message id, the timestamp (Unix seconds) and the body,
// joined by dots.
func Signature(secret, msgID string, timestamp int64, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// BodySignature returns the x-signature header: the hex HMAC-SHA256 of the
// body alone, keyed the same way, for receivers that check only the body.
func BodySignature(secret string, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil)), nil
}

// signer signs deliveries with one secret. It decodes the secret once and
// keeps the HMACs it made for reuse, so that signing a delivery costs the
// hashing alone.
type signer struct {
	key  []byte
	macs sync.Pool // hash.Hash, HMAC-SHA256 keyed by key
}

func newSigner(secret string) (*signer, error) {
	key, err := secretKey(secret)
	if err != nil {
		return nil, err
	}
	return &signer{key: key}, nil
}

// sign returns the webhook-signature and x-signature headers of a
// delivery, as Signature and BodySignature do.
func (s *signer) sign(msgID string, timestamp int64, body []byte) (sig, bodySig string) {
	mac, _ := s.macs.Get().(hash.Hash)
	if mac == nil {
		mac = hmac.New(sha256.New, s.key)
	}
	defer s.macs.Put(mac)
	var buf [64]byte
	var sum [sha256.Size]byte

	prefix := append(buf[:0], msgID...)
	prefix = append(prefix, '.')
	prefix = strconv.AppendInt(prefix, timestamp, 10)
	prefix = append(prefix, '.')
	mac.Reset()
	mac.Write(prefix)
	mac.Write(body)
	out := make([]byte, 3+base64.StdEncoding.EncodedLen(sha256.Size))
	copy(out, "v1,")
	base64.StdEncoding.Encode(out[3:], mac.Sum(sum[:0]))
	sig = string(out)

	mac.Reset()
	mac.Write(body)
	return sig, hex.EncodeToString(mac.Sum(sum[:0]))
}

// Verify checks a delivery as a receiver would: the webhook-signature
// header must hold a v1 signature of msgID, timestamp and body under
// secret, and the timestamp must be within tolerance of now (0 skips that
// check). It compares in constant time.
func Verify(secret, msgID, timestamp, signatures string, body []byte, now time.Time,
	tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("webhook: malformed timestamp")
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
			return errors.New("webhook: timestamp outside the tolerance")
		}
	}
	want, err := Signature(secret, msgID, ts, body)
	if err != nil {
		return err
	}
	// The header may carry several signatures separated by spaces, while a
	// secret is being rotated.
	for _, sig := range strings.Fields(signatures) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("webhook: no matching signature")
}
