package asyncengine_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const marker = "Sup3rSecretMarker"

// secretCorpus holds malformed and well-formed connection strings with the marker as a
// password or a secret key's value.
func secretCorpus(t *testing.T) []string {
	m := marker
	return []string{
		"postgresql://u:" + m + "@h/db",
		"postgresql://u:" + m + "@h:badport/db",
		"postgresql://u:Zm9v/" + m + "+cXV4=@h/db",
		"postgresql://u:Zm9v/YmFy" + m + "=@h:5432/db?pool_size=2",
		"postgresql://u:" + m + "@with@at@h/db",
		"postgresql://u:pre@" + m + "@h/db",
		"postgresql://u:pre@" + m + "@h/db?pool_size=-3",
		"postgresql://u:" + m + "?q@h/db",
		"postgresql://u:" + m + "#frag@h/db",
		"postgresql://u:" + m + "@[::1/db",
		"postgresql://u:" + m + "@h/db?pool_size=-3",
		"postgresql://u:" + m + "@h/db?pool_sise=3",
		"postgresql://u:" + m + "@h/db?max_overflw=3",
		"postgresql://u:" + m + "@h/db?pool_max_conns=3",
		"postgresql://u:" + m + "@h/db?x=%zz",
		"postgresql://u:" + m + "@h/db?sslmode=bogus",
		"postgresql://u:" + m + "@h/db?default_query_exec_mode=bogus",
		"postgresql://u:" + m + "@h/db?statement_cache=none&default_query_exec_mode=simple_protocol",
		"postgresql://u:" + m + "@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt",
		"postgresql://h/db?password=" + m + "&sslpassword=" + m,
		"postgresql://h/db?password=" + m + "&pool_size=%zz",
		"postgresql://h/db?password=" + m[:4] + "%" + fmt.Sprintf("%02X", m[4]) + m[5:] + "&sslmode=disable",
		"postgresql://h/db?sslpassword=" + m + "&sslmode=bogus",
		"postgresql+stdlib://u:" + m + "@h/db?sslmode=bogus",
		"postgresql+psycopg://u:" + m + "@h/db",
		"postgresql//u:" + m + "@h/db",
		"mysql://u:" + m + "@h/db",
		"u:" + m + "@h/db",
		"host=h password=" + m + " pool_size=x",
		"host=h password=" + m + " dbname=db",
		"host=h password='" + m + " with space' sslmode=bogus",
		"host=h password='" + m + " with space' dbname=db",
		"host=h password=" + m + " oops",
		"host=h password='" + m + " unterminated",
		"host=h password = " + m + " dbname=db",
		"host=h sslpassword=" + m + " sslmode=bogus",
		"password=" + m + " host",
		"password=" + m + " host=h max_overflw=2",
		"sqlite:///x.db?password=" + m,
		"sqlite:///" + t.TempDir() + "/x.db?_pragma=" + m,
		"postgresql://u:" + m + "@127.0.0.1:1/db?sslmode=disable&pool_timeout=5",
		"host=127.0.0.1 port=1 password=" + m + " sslmode=disable",
	}
}

// TestSecretsNeverPrinted feeds the corpus through parsing, engine creation, a connect attempt
// and every way of printing a Config, and looks for the password in all of it.
func TestSecretsNeverPrinted(t *testing.T) {
	for _, s := range secretCorpus(t) {
		var out []string
		func() {
			defer func() {
				if r := recover(); r != nil {
					out = append(out, fmt.Sprint(r))
				}
			}()
			cfg, err := asyncengine.ParseConfig(s)
			if err != nil {
				out = append(out, err.Error(), fmt.Sprintf("%v|%+v|%#v", err, err, err))
				return
			}
			for _, v := range []any{cfg, *cfg} {
				out = append(out, fmt.Sprintf("%v|%+v|%#v|%s", v, v, v, v))
			}
			out = append(out, cfg.String())
			var log logBuffer
			cfg.Echo = true
			cfg.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
			slog.New(slog.NewTextHandler(&log, nil)).Info("config", "cfg", cfg, "value", *cfg)
			e, err := asyncengine.NewWithConfig(cfg)
			if err != nil {
				out = append(out, err.Error(), fmt.Sprintf("%v|%+v|%#v", err, err, err), log.String())
				return
			}
			defer e.Close()
			ctx, cancel := ctxTimeout(2 * time.Second)
			defer cancel()
			if c, err := e.Connect(ctx); err != nil {
				out = append(out, err.Error(), fmt.Sprintf("%+v", err))
			} else {
				c.Close()
			}
			out = append(out, fmt.Sprintf("%v|%+v|%#v", e.Config(), e.Config(), e.Config()), log.String())
		}()
		for _, o := range out {
			assert.NotContains(t, o, marker, "input %q", s)
			assert.NotContains(t, o, marker[:8]+"…", "input %q", s)
		}
	}
}

func TestSecretsRedactedInString(t *testing.T) {
	for s, want := range map[string]string{
		"postgresql://u:" + marker + "@h/db?sslmode=disable&password=" + marker + "&pool_size=2": "postgresql://u:xxxxx@h/db?sslmode=disable&password=xxxxx",
		"host=h password='" + marker + " x' pool_size=2 dbname=db":                               "host=h password=xxxxx dbname=db",
	} {
		cfg, err := asyncengine.ParseConfig(s)
		if assert.NoError(t, err, s) {
			assert.Equal(t, want, cfg.String())
			assert.True(t, strings.Contains(cfg.DSN, marker), "the driver still gets the password")
		}
	}
	// pgx and net/url read an unencoded '@' differently: refused, saying how to write it
	_, err := asyncengine.ParseConfig("postgresql://u:pre@" + marker + "@h/db")
	assert.ErrorIs(t, err, asyncengine.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "%40")
	assert.Contains(t, err.Error(), "postgresql://u:xxxxx@h/db")
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// FuzzSecretsNeverPrinted puts the marker where a password goes, followed by anything.
func FuzzSecretsNeverPrinted(f *testing.F) {
	for _, s := range []string{"", "@h/db", "?x=1", "/x", "#", "' x", " oops", "\\", "&pool_size=-1", "%zz", ":1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, in := range []string{"postgresql://u:" + marker + s + "@h/db", "postgresql://h/db?password=" + marker + s,
			"host=h password=" + marker + s, "host=h password='" + marker + s + "'"} {
			cfg, err := asyncengine.ParseConfig(in)
			var out string
			if err != nil {
				out = fmt.Sprintf("%v %+v %#v", err, err, err)
			} else {
				out = fmt.Sprintf("%v %+v %#v %s", cfg, *cfg, cfg, cfg)
			}
			if strings.Contains(out, marker) {
				t.Fatalf("%q printed its password: %s", in, out)
			}
		}
	})
}

// TestShortPasswordDoesNotGarbleMessages: a short password is hidden where the string is printed,
// and the rest of the message stays readable.
func TestShortPasswordDoesNotGarbleMessages(t *testing.T) {
	_, err := asyncengine.ParseConfig("postgresql://u:a@h:badport/db?pool_size=1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid configuration")
	assert.Contains(t, err.Error(), "u:xxxxx@h")
}
