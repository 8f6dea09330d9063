package webhook

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// KeyFileName is the file in the data directory that holds the key under
// which webhook signing secrets are sealed.
const KeyFileName = "webhook.key"

// SecretBox seals webhook signing secrets for the catalog and opens them to
// sign deliveries. The server must sign with a secret, so it cannot keep
// only a hash as it does for API keys; instead each secret is sealed with
// AES-256-GCM under a key that lives in its own file beside the catalog
// (<data-dir>/webhook.key, mode 0600, made on first start). A copy of the
// catalog alone reveals no secret. Losing the key file makes the stored
// secrets unusable: back it up with the catalog.
type SecretBox struct {
	aead cipher.AEAD
}

// OpenSecretBox reads the key file in dir, creating it with a new random
// key when it does not exist.
func OpenSecretBox(dir string) (*SecretBox, error) {
	path := filepath.Join(dir, KeyFileName)
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err = createKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("webhook key %s: want 32 bytes, found %d", path, len(key))
	}
	return NewSecretBox(key)
}

// createKeyFile writes a new random key to path, which must not exist, so
// that two processes starting at once cannot each write their own.
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return os.ReadFile(path)
	} else if err != nil {
		return nil, err
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return key, f.Close()
}

// NewSecretBox returns a box sealing with key, 32 bytes.
func NewSecretBox(key []byte) (*SecretBox, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &SecretBox{aead: aead}, nil
}

// Seal encrypts secret for the webhook with id webhookID. The id is bound
// into the seal, so a sealed secret copied to another webhook's row does
// not open.
func (b *SecretBox) Seal(webhookID, secret string) (string, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return "", err
	}
	out := b.aead.Seal(nonce, nonce, []byte(secret), []byte(webhookID))
	return base64.StdEncoding.EncodeToString(out), nil
}

// Open decrypts a secret sealed for webhookID.
func (b *SecretBox) Open(webhookID, sealed string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", errors.New("webhook: malformed sealed secret")
	}
	n := b.aead.NonceSize()
	secret, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(webhookID))
	if err != nil {
		return "", errors.New("webhook: the secret does not open with this server's webhook key")
	}
	return string(secret), nil
}
