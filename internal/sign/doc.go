// Package sign signs and verifies MIG actions and API tokens with OpenPGP
// detached signatures (version 4 keys; Ed25519 and RSA), and holds the
// keyrings that decide whose signatures count.
//
// # Trust model
//
// An agent trusts exactly one thing: the investigators' public keys in its
// own keyring, installed on the endpoint by its operator. Everything between
// the investigator's machine and the agent — the API server, the store, the
// relay, the network — is an untrusted carrier. A compromised server can
// delay, drop or replay what investigators signed, but it cannot make an
// agent run anything that an investigator did not sign, because the agent
// checks every signature itself, against its own keyring, before it does
// anything else with the action.
//
// What a signature covers: the bytes of [action.Action.Encoding], a
// deterministic, versioned encoding ("mig-action-v1") of every field that
// decides what an agent does: the ID, name, target, description, threat,
// validity window, and each operation's module and canonical parameters. The
// signatures themselves and the platform's bookkeeping fields (status,
// counters, times) are not covered; changing any covered field invalidates
// every signature. The encoding starts with a prefix naming the format, so a
// signature over an action cannot be replayed as a signature over anything
// else (an API token signs a different prefix, "mig-token-v2").
//
// Verify before interpreting: an agent calls [VerifyAction] on the action it
// received before it evaluates the target, looks at the modules or parses
// any parameter (the agent uses [VerifyChecked], which verifies over the
// encoding computed once, by [action.Action.Check], from the action as
// received; an action is never verified against bytes computed from
// anything else). [VerifyAction] requires at least one signature, and every
// signature on the action must verify against the keyring over the action's
// encoding: one bad or unknown signature fails the whole action, so nobody can
// pad an action with signatures the agent cannot check.
//
// One key counts once: [VerifyAction] returns the distinct fingerprints of
// the primary keys that signed. A signature made by a signing subkey counts
// as its primary key's fingerprint, and two signatures by the same key (which
// differ byte for byte, since each carries its own creation time) still count
// as one signer. The ACL (package acl) adds up weights over these distinct
// fingerprints, so a module that needs two investigators needs two different
// keys, not one key signing twice.
//
// The platform never holds a private key. Investigators sign on their own
// machine, with GnuPG ([NewGPGSigner]) or with a key file ([NewKeySigner]);
// the server stores and checks public keys only. [GenerateKey] exists for the
// development investigator of `mig-server -dev` and for tests.
//
// # Results
//
// The other direction is signed too, but not by this package: each agent
// signs its result messages with its own Ed25519 identity key
// ([action.SignResult], "mig-result-v1"), over the result as sent, the
// command and action IDs and the SHA-256 of the action encoding whose
// signatures it verified. The server stores the signature unchanged and
// `mig results` verifies it ([action.VerifyResult]) against the agent keys
// pinned on the investigator's machine (package agentkeys): a server can
// then neither alter nor invent the result of a pinned agent. It can still
// drop results, and it can enroll an agent of its own under a name the
// investigator has not pinned yet (trust on first use) — docs/ARCHITECTURE.md
// says what signed results prove and what they do not.
//
// # What a valid signature is
//
// A signature is one ASCII-armored "PGP SIGNATURE" block holding exactly one
// OpenPGP version 4 signature packet of type binary (0x00), with a SHA-2 or
// SHA-3 hash, naming its issuer key. Text signatures, other signature types,
// several packets in one block, several blocks, and text around the block are
// refused. The issuer must be a primary key or a signing subkey of a key in
// the keyring, allowed to sign (key flags), not revoked, not expired, and the
// signature must not be expired nor made more than [MaxClockSkew] in the
// future. RSA keys must have at least 2048 bits; DSA and ElGamal keys are not
// accepted. Sizes are bounded before anything is parsed.
package sign
