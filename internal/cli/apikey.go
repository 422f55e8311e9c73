package cli

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/client"
)

// apikeyUsage is the usage line of "mig apikey".
const apikeyUsage = "mig apikey create -name NAME [-perm a,b] [-expire 720h] | list [-all] [-render text|json] | revoke KEYID"

// apikeyCmd runs "mig apikey create | list | revoke": the investigator's API
// keys, for automation that reads results and agents without an OpenPGP
// key. Creating one needs the investigator's OpenPGP key; the key is printed
// once, on stdout, and never again.
func (r *runner) apikeyCmd(args []string) error {
	if len(args) == 0 {
		return usagef("usage: %s", apikeyUsage)
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("mig apikey "+verb, flag.ContinueOnError)
	g := &globals{}
	g.register(fs, []string{flagConfig, flagVerbose})
	var name, perms string
	var expire time.Duration
	var all bool
	switch verb {
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(r.stdout, "usage: %s\n", apikeyUsage)
		return nil
	case "create":
		fs.StringVar(&name, "name", "", "what the key is for (`name`)")
		fs.StringVar(&perms, "perm", "", "comma-separated `permissions`, a subset of yours (default action.read,agent.read)")
		fs.DurationVar(&expire, "expire", 0, "the key stops working after this `duration` (e.g. 720h; default never)")
	case "list":
		g.register(fs, []string{flagRender})
		fs.BoolVar(&all, "all", false, "every investigator's keys (needs investigator.admin)")
	case "revoke":
	default:
		return usagef("mig apikey: unknown verb %q; usage: %s", verb, apikeyUsage)
	}
	pos, err := r.parseFlags(fs, args, simpleUsage(fs, apikeyUsage))
	if err != nil {
		return err
	}
	if err := g.check(); err != nil {
		return err
	}
	var keyID string
	switch verb {
	case "create", "list":
		if len(pos) > 0 {
			return usagef("mig apikey %s: unexpected argument %q", verb, pos[0])
		}
	default:
		if len(pos) != 1 {
			return usagef("mig apikey revoke: give one key id")
		}
		keyID = strings.TrimPrefix(pos[0], action.APIKeyPrefix)
		if len(keyID) > action.APIKeyIDLen && keyID[action.APIKeyIDLen] == '_' {
			// A whole key was given: keep its ID, never print its secret.
			keyID = keyID[:action.APIKeyIDLen]
		}
		if !validKeyID(keyID) {
			return usagef("mig apikey revoke: key id %q is not 16 lower-case hex digits", keyID)
		}
	}
	var permList []string
	var expireAfter time.Time
	if verb == "create" {
		if strings.TrimSpace(name) == "" {
			return usagef("mig apikey create: -name is required")
		}
		permList = splitList(perms)
		if expire < 0 || (expire == 0 && isFlagSet(fs, "expire")) {
			return usagef("mig apikey create: -expire %s is not a positive duration", expire)
		}
		if expire > 0 {
			expireAfter = r.now().Add(expire).UTC()
		}
	}
	cfg, err := r.loadConfig(g)
	if err != nil {
		return err
	}
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	switch verb {
	case "create":
		nk, err := c.CreateAPIKey(r.ctx, name, permList, expireAfter)
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
	case "list":
		keys, err := c.APIKeys(r.ctx, all)
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
	default:
		k, err := c.RevokeAPIKey(r.ctx, keyID)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "API key %s %q revoked\n", k.KeyID, k.Name)
		return nil
	}
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

// isFlagSet reports whether flag name was given on fs's command line.
func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
