package cli

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/client"
	"github.com/migplatform/mig/internal/cmdflag"
)

// The verbs of "mig apikey" (apikeyVerbs) manage the investigator's API
// keys, for automation that reads results and agents without an OpenPGP
// key. Creating one needs the investigator's OpenPGP key; the key is printed
// once, on stdout, and never again.

// apikeyCreateFlags are the flags of "mig apikey create -name NAME [-perm
// a,b] [-expire 720h]", and its run.
func apikeyCreateFlags(fs *flag.FlagSet) runFunc {
	name := fs.String("name", "", "what the key is for (`name`)")
	perms := fs.String("perm", "", "comma-separated `permissions`, a subset of yours, among action.read, agent.read, audit.read, action.create, investigator.admin (default action.read,agent.read)")
	expire := fs.Duration("expire", 0, "the key stops working after this `duration` (e.g. 720h; default never)")
	return func(r *runner, g *globals, _ []string) error {
		if strings.TrimSpace(*name) == "" {
			return usagef("mig apikey create: -name is required")
		}
		if *expire < 0 || (*expire == 0 && cmdflag.IsSet(fs, "expire")) {
			return usagef("mig apikey create: -expire %s is not a positive duration", *expire)
		}
		var expireAfter time.Time
		if *expire > 0 {
			expireAfter = r.now().Add(*expire).UTC()
		}
		c, err := r.client(g)
		if err != nil {
			return err
		}
		nk, err := c.CreateAPIKey(r.ctx, *name, splitList(*perms), expireAfter)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(r.stdout, nk.Key); err != nil {
			return err
		}
		exp := "never expires"
		if !nk.APIKey.ExpireAfter.IsZero() {
			exp = "expires " + formatTime(nk.APIKey.ExpireAfter)
		}
		fmt.Fprintf(r.stderr, "API key %s %q created, permissions %s, %s.\nStore it now: it is not shown again. Use it with \"apikey\" in the configuration or $%s.\n",
			nk.APIKey.KeyID, nk.APIKey.Name, strings.Join(nk.APIKey.Permissions, ","), exp, client.APIKeyEnv)
		return nil
	}
}

// apikeyListFlags are the flags of "mig apikey list [-all] [-render
// text|json]", and its run.
func apikeyListFlags(fs *flag.FlagSet) runFunc {
	all := fs.Bool("all", false, "every investigator's keys (needs investigator.admin)")
	return func(r *runner, g *globals, _ []string) error {
		c, err := r.client(g)
		if err != nil {
			return err
		}
		keys, err := c.APIKeys(r.ctx, *all)
		if err != nil {
			return err
		}
		if g.render == RenderJSON {
			for _, k := range keys {
				if err := writeJSONLine(r.stdout, k, "API key "+k.KeyID); err != nil {
					return err
				}
			}
			return nil
		}
		now := r.now()
		var rows [][]string
		for _, k := range keys {
			rows = append(rows, []string{k.KeyID, k.Name, fmt.Sprint(k.InvestigatorID), apiKeyStatus(k, now),
				strings.Join(k.Permissions, ","), formatTime(k.CreatedAt), formatTime(k.ExpireAfter), formatTime(k.LastUsedAt)})
		}
		return writeTable(r.stdout, []string{"KEYID", "NAME", "INVESTIGATOR", "STATUS", "PERMISSIONS", "CREATED", "EXPIRES", "LAST USED"}, rows)
	}
}

// apikeyRevoke runs "mig apikey revoke KEYID". A whole key is accepted too:
// its ID is kept and its secret never printed.
func (r *runner) apikeyRevoke(g *globals, pos []string) error {
	if len(pos) != 1 {
		return usagef("mig apikey revoke: give one key id")
	}
	keyID := strings.TrimPrefix(pos[0], action.APIKeyPrefix)
	if len(keyID) > action.APIKeyIDLen && keyID[action.APIKeyIDLen] == '_' {
		keyID = keyID[:action.APIKeyIDLen]
	}
	if !validKeyID(keyID) {
		return usagef("mig apikey revoke: key id %q is not 16 lower-case hex digits", keyID)
	}
	c, err := r.client(g)
	if err != nil {
		return err
	}
	k, err := c.RevokeAPIKey(r.ctx, keyID)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.stdout, "API key %s %q revoked\n", k.KeyID, k.Name)
	return nil
}

// apiKeyStatus says whether a key works at now.
func apiKeyStatus(k action.APIKey, now time.Time) string {
	switch {
	case !k.RevokedAt.IsZero():
		return "revoked"
	case !k.ExpireAfter.IsZero() && !now.Before(k.ExpireAfter):
		return "expired"
	}
	return "active"
}

func validKeyID(id string) bool {
	if len(id) != action.APIKeyIDLen {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
