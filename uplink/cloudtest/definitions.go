package cloudtest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"regexp"
)

// definitions returns the node's definitions file (users, permissions, policies) in
// the JSON format of rabbitmqctl import_definitions; the node loads it at boot.
func (b *Broker) definitions() ([]byte, error) {
	type userDef struct {
		Name             string `json:"name"`
		PasswordHash     string `json:"password_hash"`
		HashingAlgorithm string `json:"hashing_algorithm"`
		Tags             string `json:"tags"`
	}
	type permission struct {
		User      string `json:"user"`
		Vhost     string `json:"vhost"`
		Configure string `json:"configure"`
		Write     string `json:"write"`
		Read      string `json:"read"`
	}
	type policy struct {
		Vhost      string         `json:"vhost"`
		Name       string         `json:"name"`
		Pattern    string         `json:"pattern"`
		ApplyTo    string         `json:"apply-to"`
		Definition map[string]any `json:"definition"`
		Priority   int            `json:"priority"`
	}
	var defs struct {
		Users       []userDef    `json:"users"`
		Vhosts      []any        `json:"vhosts"`
		Permissions []permission `json:"permissions"`
		Policies    []policy     `json:"policies"`
		Queues      []any        `json:"queues"`
		Exchanges   []any        `json:"exchanges"`
		Bindings    []any        `json:"bindings"`
		Parameters  []any        `json:"parameters"`
		Global      []any        `json:"global_parameters"`
	}
	defs.Vhosts = []any{map[string]string{"name": "/"}}
	defs.Queues, defs.Exchanges, defs.Bindings = []any{}, []any{}, []any{}
	defs.Parameters, defs.Global = []any{}, []any{}
	defs.Policies = []policy{}

	users := append([]user{
		{b.User, b.Password, ".*", ".*", ".*"},
		{b.RestrictedUser, b.RestrictedPassword, "^$", "^$", ".*"},
	}, b.cfg.users...)
	for _, u := range users {
		defs.Users = append(defs.Users, userDef{
			Name:             u.name,
			PasswordHash:     passwordHash(u.password),
			HashingAlgorithm: "rabbit_password_hashing_sha256",
		})
		defs.Permissions = append(defs.Permissions, permission{u.name, "/", u.configure, u.write, u.read})
	}
	for _, l := range b.cfg.limits {
		defs.Policies = append(defs.Policies, policy{
			Vhost:   "/",
			Name:    "cloudtest-limit-" + l.queue,
			Pattern: "^" + regexp.QuoteMeta(l.queue) + "$",
			ApplyTo: "queues",
			Definition: map[string]any{
				"max-length": l.maxLength,
				"overflow":   "reject-publish",
			},
		})
	}
	return json.MarshalIndent(defs, "", "  ")
}

// passwordHash returns a password hash for rabbit_password_hashing_sha256:
// base64(salt + SHA-256(salt + password)) with a 4-byte random salt.
func passwordHash(password string) string {
	salt := make([]byte, 4)
	_, _ = rand.Read(salt)
	sum := sha256.Sum256(append(append([]byte(nil), salt...), password...))
	return base64.StdEncoding.EncodeToString(append(salt, sum[:]...))
}
