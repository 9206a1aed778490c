package asyncengine

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseConfigKeys(t *testing.T) {
	cfg, err := ParseConfig("postgresql://u:secret@db:5432/app?pool_size=3&max_overflow=-1&pool_timeout=0.5&pool_recycle=2m&pool_pre_ping=true&pool_use_lifo=1&pool_reset_on_return=commit&poolclass=queue&workers=7&statement_cache=none&echo=false&sslmode=disable&application_name=x")
	require.NoError(t, err)
	assert.Equal(t, 3, cfg.PoolSize)
	assert.Equal(t, -1, cfg.MaxOverflow)
	assert.Equal(t, 500*time.Millisecond, cfg.PoolTimeout)
	assert.Equal(t, 2*time.Minute, cfg.PoolRecycle)
	assert.True(t, cfg.PoolPrePing)
	assert.True(t, cfg.PoolUseLIFO)
	assert.Equal(t, ResetCommit, cfg.PoolResetOnReturn)
	assert.Equal(t, 7, cfg.Workers)
	assert.Equal(t, CacheNone, cfg.StatementCache)
	assert.Contains(t, cfg.DSN, "sslmode=disable")
	assert.Contains(t, cfg.DSN, "application_name=x")
	assert.NotContains(t, cfg.DSN, "pool_size")
	assert.NotContains(t, cfg.String(), "secret", "the password is redacted")

	cfg, err = ParseConfig("sqlite://")
	require.NoError(t, err)
	assert.Equal(t, PoolStatic, cfg.PoolClass, "in-memory SQLite keeps one connection")
	cfg, err = ParseConfig("sqlite:////tmp/x.db?pool_size=2")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(cfg.DSN, "file:/tmp/x.db?"), cfg.DSN)
	cfg, err = ParseConfig("postgresql+stdlib://localhost/db")
	require.NoError(t, err)
	assert.Equal(t, DriverStdlib, cfg.Driver)
}

func TestParseConfigErrors(t *testing.T) {
	cases := map[string]string{
		"no scheme":         "localhost/db",
		"unknown dialect":   "mysql://localhost/db",
		"unknown driver":    "postgresql+psycopg://localhost/db",
		"unknown key":       "postgresql://localhost/db?pool_sise=3",
		"negative size":     "postgresql://localhost/db?pool_size=-3",
		"bad timeout":       "postgresql://localhost/db?pool_timeout=abc",
		"bad bool":          "postgresql://localhost/db?pool_use_lifo=maybe",
		"bad poolclass":     "postgresql://localhost/db?poolclass=singleton",
		"bad reset":         "postgresql://localhost/db?pool_reset_on_return=maybe",
		"bad cache":         "postgresql://localhost/db?statement_cache=always",
		"pgxpool on sqlite": "sqlite://?poolclass=pgxpool",
		"bad query":         "postgresql://localhost/db?pool_size=%zz",
	}
	for name, url := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(url)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce))
		})
	}
	_, err := ParseConfig("postgresql://localhost/db?pool_size=-3")
	assert.Contains(t, err.Error(), "pool_size")
	assert.Contains(t, err.Error(), ">= 0")
	_, err = ParseConfig("postgresql://localhost/db?pool_use_lifo=maybe")
	assert.Contains(t, err.Error(), "true, false")
	_, err = ParseConfig("postgresql://u:hunter2@localhost/db?pool_sise=3")
	assert.Contains(t, err.Error(), "pool_size", "the message lists the known keys")
	_, err = ParseConfig("postgresql//u:hunter2@localhost/db")
	assert.NotContains(t, err.Error(), "hunter2")
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"postgresql://", "sqlite://", "postgresql://u:p@h:1/db?pool_size=1", "sqlite:///x.db?poolclass=null", "postgresql+stdlib://h/d?echo=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, url string) {
		cfg, err := ParseConfig(url)
		if err == nil && cfg.Driver == "" {
			t.Fatal("a config without a driver")
		}
	})
}

func TestNewWithConfigChecksEditedFields(t *testing.T) {
	cfg, err := ParseConfig("sqlite://")
	require.NoError(t, err)
	cfg.PoolClass = "singleton"
	_, err = NewWithConfig(cfg)
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "poolclass")
	cfg, _ = ParseConfig("sqlite://")
	cfg.PoolSize = -1
	_, err = NewWithConfig(cfg)
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = NewWithConfig(&Config{})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

// An unknown key is named without its value, which may be a misspelt secret.
func TestUnknownKeyErrorNamesTheKey(t *testing.T) {
	_, err := New("postgresql://u@localhost/db?max_overflw=5")
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "max_overflw")
	assert.NotContains(t, err.Error(), `max_overflw=""`)
	_, err = New("postgresql://u@localhost/db?passwrd=s3cret")
	if err != nil {
		assert.NotContains(t, err.Error(), "s3cret")
	}
}
