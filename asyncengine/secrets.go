package asyncengine

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// secretKeys are connection string keys whose values are never printed.
var secretKeys = map[string]bool{"password": true, "sslpassword": true}

const redacted = "xxxxx"

// minScrub is the shortest secret, or piece of one, that messages are scrubbed of.
const minScrub = 4

// secrets are the secret values found in one connection string, in every spelling an error
// message might quote: as written, decoded, and cut at the characters where a parser may have
// split them. Messages built from that string are scrubbed of them.
type secrets []string

// secretsOf finds the secrets of a URL or keyword/value string, also one that does not parse.
func secretsOf(s string) secrets {
	var found []string
	add := func(v string) {
		// a value this short would garble every message it is scrubbed from; the structural
		// redaction (describe, and pgx's own) still hides it where a connection string is printed
		if len(v) < minScrub {
			return
		}
		found = append(found, v)
		if d, err := url.QueryUnescape(v); err == nil && d != v {
			found = append(found, d)
		}
		if d, err := url.PathUnescape(v); err == nil && d != v {
			found = append(found, d)
		}
		for _, piece := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune("@:/?#&= '\\", r) }) {
			if len(piece) >= minScrub && piece != v {
				found = append(found, piece)
			}
		}
	}
	if _, rest, ok := strings.Cut(s, "://"); ok {
		// the userinfo ends at the last '@': before the query, and (for a password holding an
		// unencoded '?') anywhere
		for _, authority := range []string{strings.SplitN(rest, "?", 2)[0], rest} {
			if at := strings.LastIndex(authority, "@"); at >= 0 {
				if _, pw, ok := strings.Cut(authority[:at], ":"); ok {
					add(pw)
				}
			}
		}
		if u, err := url.Parse(s); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				add(pw)
			}
		}
		if _, q, ok := strings.Cut(rest, "?"); ok {
			for _, part := range strings.Split(q, "&") {
				k, v, _ := strings.Cut(part, "=")
				if dk, err := url.QueryUnescape(k); err == nil && secretKeys[strings.ToLower(dk)] || secretKeys[strings.ToLower(k)] {
					add(v)
				}
			}
		}
	} else if pairs, err := splitKeywordValue(s); err == nil {
		for _, p := range pairs {
			if secretKeys[strings.ToLower(p.key)] {
				add(p.value)
				add(s[p.start:p.end])
			}
		}
	} else {
		// an unfinished keyword/value string: everything after a secret key is suspect
		for _, m := range kvSecret.FindAllStringSubmatch(s, -1) {
			add(m[2])
		}
		for _, m := range looseUserinfo.FindAllStringSubmatch(s, -1) {
			add(m[2])
		}
	}
	// longest first, so that a piece does not break up a longer match
	for i := 1; i < len(found); i++ {
		for j := i; j > 0 && len(found[j]) > len(found[j-1]); j-- {
			found[j], found[j-1] = found[j-1], found[j]
		}
	}
	return found
}

// looseUserinfo is user:password@ in a string that is not a URL (a mistyped scheme).
var looseUserinfo = regexp.MustCompile(`([^/:@\s]+):([^@\s]*)@`)

var kvSecret = regexp.MustCompile(`(?i)((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)`)

// scrub replaces every secret in msg.
func (s secrets) scrub(msg string) string {
	for _, v := range s {
		msg = strings.ReplaceAll(msg, v, redacted)
	}
	return msg
}

// clean makes err safe to print: a *ConfigError gets scrubbed fields, and an error whose text
// quotes a secret is replaced by one with the same text scrubbed (the original, which would print
// the secret, is not kept).
func (s secrets) clean(err error) error {
	if err == nil || len(s) == 0 {
		return err
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		out := *ce
		out.Key, out.Value, out.Allowed = s.scrub(ce.Key), s.scrub(ce.Value), s.scrub(ce.Allowed)
		out.Err = s.cleanErr(ce.Err)
		return &out
	}
	return s.cleanErr(err)
}

func (s secrets) cleanErr(err error) error {
	if err == nil {
		return nil
	}
	if msg := err.Error(); s.scrub(msg) != msg {
		return errors.New(s.scrub(msg))
	}
	return err
}

// describe returns a connection string fit to print: the userinfo password and the values of
// secret keys become xxxxx, whatever the form of the string and whether it parses.
func describe(s string) string {
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		authority, query, hasQuery := strings.Cut(rest, "?")
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			if user, _, ok := strings.Cut(authority[:at], ":"); ok {
				authority = user + ":" + redacted + authority[at:]
			}
		}
		out := scheme + "://" + authority
		if hasQuery {
			parts := strings.Split(query, "&")
			for i, part := range parts {
				k, _, _ := strings.Cut(part, "=")
				if dk, err := url.QueryUnescape(k); err == nil && secretKeys[strings.ToLower(dk)] || secretKeys[strings.ToLower(k)] {
					parts[i] = k + "=" + redacted
				}
			}
			out += "?" + strings.Join(parts, "&")
		}
		return secretsOf(s).scrub(out)
	}
	if pairs, err := splitKeywordValue(s); err == nil {
		words := make([]string, len(pairs))
		for i, p := range pairs {
			words[i] = s[p.start:p.end]
			if secretKeys[strings.ToLower(p.key)] {
				words[i] = p.key + "=" + redacted
			}
		}
		return strings.Join(words, " ")
	}
	s2 := looseUserinfo.ReplaceAllString(kvSecret.ReplaceAllString(s, "${1}"+redacted), "${1}:"+redacted+"@")
	return secretsOf(s).scrub(s2)
}
