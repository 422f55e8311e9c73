package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/migplatform/mig/internal/action"
)

// ErrNoSigner is returned when something must be signed by a client
// configured with an API key and no signer: an API key never signs.
var ErrNoSigner = errors.New("no signer configured: an API key authenticates requests but cannot sign actions; set signer.keyfile or signer.keyid")

// noSigner is the signer of a client that has only an API key.
type noSigner struct{}

func (noSigner) Sign([]byte) (string, error) { return "", ErrNoSigner }
func (noSigner) Fingerprint() string         { return "" }

// NewAPIKey is an API key as created: the key, shown this once, and its
// description.
type NewAPIKey struct {
	Key    string        `json:"key"`
	APIKey action.APIKey `json:"apikey"`
}

// CreateAPIKey makes an API key for the investigator the client
// authenticates as (which needs an OpenPGP token, not an API key), with
// permissions (none: the server's default, reading) and an expiry (zero:
// none). The key is in the answer only: nothing can show it again.
func (c *Client) CreateAPIKey(ctx context.Context, name string, permissions []string, expireAfter time.Time) (NewAPIKey, error) {
	body := struct {
		Name        string    `json:"name"`
		Permissions []string  `json:"permissions,omitempty"`
		ExpireAfter time.Time `json:"expireafter,omitzero"`
	}{name, permissions, expireAfter.UTC()}
	var out NewAPIKey
	if err := c.do(ctx, http.MethodPost, "/apikeys", nil, body, &out, true); err != nil {
		return NewAPIKey{}, fmt.Errorf("creating API key %q: %w", name, err)
	}
	if _, _, err := action.ParseAPIKey(out.Key); err != nil {
		return NewAPIKey{}, fmt.Errorf("%w: created API key: %w", ErrBadResponse, err)
	}
	return out, nil
}

// APIKeys lists the investigator's API keys, or every investigator's when
// all is true (permission investigator.admin). Secrets are never listed.
func (c *Client) APIKeys(ctx context.Context, all bool) ([]action.APIKey, error) {
	q := url.Values{}
	if all {
		q.Set("all", "true")
	}
	var out struct {
		APIKeys []action.APIKey `json:"apikeys"`
	}
	if err := c.do(ctx, http.MethodGet, "/apikeys", q, nil, &out, true); err != nil {
		return nil, fmt.Errorf("listing API keys: %w", err)
	}
	return out.APIKeys, nil
}

// RevokeAPIKey revokes one of the investigator's API keys (any key, with
// permission investigator.admin) and returns it as revoked.
func (c *Client) RevokeAPIKey(ctx context.Context, keyID string) (action.APIKey, error) {
	var out struct {
		APIKey action.APIKey `json:"apikey"`
	}
	if err := c.do(ctx, http.MethodPost, "/apikeys/"+url.PathEscape(keyID)+"/revoke", nil, nil, &out, true); err != nil {
		return action.APIKey{}, fmt.Errorf("revoking API key %q: %w", keyID, err)
	}
	return out.APIKey, nil
}
