package action

import "time"

// APIKey describes an investigator's API key, as the API lists it: never
// the secret nor its hash. The key itself ("mig_<keyid>_<secret>") is shown
// once, when it is created. A key authenticates requests as its investigator
// with at most Permissions (intersected at each request with the
// investigator's current permissions); it can never sign an action.
type APIKey struct {
	// KeyID is the public, random part of the key: 16 lower-case hex
	// digits.
	KeyID string `json:"keyid"`
	// InvestigatorID is the investigator the key acts for.
	InvestigatorID int64 `json:"investigatorid"`
	// Name says what the key is for.
	Name string `json:"name"`
	// Permissions are the most the key may do.
	Permissions []string `json:"permissions"`
	// CreatedAt is when the key was made.
	CreatedAt time.Time `json:"createdat"`
	// ExpireAfter, when not zero, is when the key stops working.
	ExpireAfter time.Time `json:"expireafter,omitzero"`
	// RevokedAt, when not zero, is when the key was revoked.
	RevokedAt time.Time `json:"revokedat,omitzero"`
	// LastUsedAt is when the key last authenticated a request (updated at
	// most about once a minute); zero if never.
	LastUsedAt time.Time `json:"lastusedat,omitzero"`
}
