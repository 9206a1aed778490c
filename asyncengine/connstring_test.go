package asyncengine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine/internal/pgxdriver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeCA writes a self-signed CA certificate to path.
func writeCA(t *testing.T, path string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
}

// driverView is what a parsed pgx configuration says, without its functions.
type driverView struct {
	Host, Database, User, Password, KerberosSrvName, KerberosSpn string
	Port                                                         uint16
	ConnectTimeout                                               time.Duration
	RuntimeParams                                                map[string]string
	TLS                                                          []string
	Fallbacks                                                    []string
	ExecMode                                                     pgx.QueryExecMode
	StatementCacheCapacity, DescriptionCacheCapacity             int
}

func viewOf(c *pgx.ConnConfig) driverView {
	v := driverView{Host: c.Host, Database: c.Database, User: c.User, Password: c.Password, KerberosSrvName: c.KerberosSrvName,
		KerberosSpn: c.KerberosSpn, Port: c.Port, ConnectTimeout: c.ConnectTimeout, RuntimeParams: c.RuntimeParams,
		ExecMode: c.DefaultQueryExecMode, StatementCacheCapacity: c.StatementCacheCapacity, DescriptionCacheCapacity: c.DescriptionCacheCapacity}
	tls := func(fc *pgconn.FallbackConfig) string {
		if fc.TLSConfig == nil {
			return fmt.Sprintf("%s:%d plain", fc.Host, fc.Port)
		}
		roots := 0
		if fc.TLSConfig.RootCAs != nil {
			//lint:ignore SA1019 the pool holds only certificates loaded from files
			roots = len(fc.TLSConfig.RootCAs.Subjects())
		}
		return fmt.Sprintf("%s:%d tls %s roots %d", fc.Host, fc.Port, fc.TLSConfig.ServerName, roots)
	}
	for _, fb := range c.Fallbacks {
		v.Fallbacks = append(v.Fallbacks, tls(fb))
	}
	v.TLS = append(v.TLS, tls(&pgconn.FallbackConfig{Host: c.Host, Port: c.Port, TLSConfig: c.TLSConfig}))
	return v
}

// TestDriverConfigRoundTrip: for each string, the configuration the engine's driver connects
// with equals pgx's own ParseConfig of the same string without gosqla's keys.
func TestDriverConfigRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "path with space")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	ca := filepath.Join(dir, "ca.crt")
	writeCA(t, ca)
	service := filepath.Join(dir, "pg_service.conf")
	require.NoError(t, os.WriteFile(service, []byte("[etl]\nhost=svc.example\nport=6543\ndbname=warehouse\napplication_name=from service\n"), 0o600))
	t.Setenv("PGAPPNAME", "from env")
	t.Setenv("PGCONNECT_TIMEOUT", "7")
	escapedCA := url.PathEscape(ca)

	cases := []struct{ in, pgx string }{
		{"postgresql://u:p%40ss@h1:5433,h2:5434/db?sslmode=disable&application_name=nightly%20etl&options=-c%20search_path%3Dfoo&pool_size=3",
			"postgresql://u:p%40ss@h1:5433,h2:5434/db?sslmode=disable&application_name=nightly%20etl&options=-c%20search_path%3Dfoo"},
		{"postgresql://u@h/db?sslmode=verify-ca&sslrootcert=" + escapedCA + "&max_overflow=2&pool_timeout=3",
			"postgresql://u@h/db?sslmode=verify-ca&sslrootcert=" + escapedCA},
		{"postgres://u@h/db?application_name=a+b&search_path=x%2Cy&echo=false",
			"postgres://u@h/db?application_name=a+b&search_path=x%2Cy"},
		{"postgresql://u@h/db?default_query_exec_mode=simple_protocol&sslmode=disable",
			"postgresql://u@h/db?default_query_exec_mode=simple_protocol&sslmode=disable"},
		{"postgresql://u@h/db?default_query_exec_mode=exec&statement_cache=none&statement_cache_capacity=7",
			"postgresql://u@h/db?default_query_exec_mode=exec&statement_cache_capacity=7"},
		{"postgresql://u@h/db?connect_timeout=3&target_session_attrs=read-write&sslmode=prefer",
			"postgresql://u@h/db?connect_timeout=3&target_session_attrs=read-write&sslmode=prefer"},
		{"host=h1,h2 port=5433,5434 dbname=db user=u password='a b\\'c' pool_size=4 application_name='nightly etl' sslmode=disable",
			"host=h1,h2 port=5433,5434 dbname=db user=u password='a b\\'c' application_name='nightly etl' sslmode=disable"},
		{"sslrootcert='" + ca + "' sslmode=verify-ca host=h workers=2",
			"sslrootcert='" + ca + "' sslmode=verify-ca host=h"},
		{"", ""},
		{"pool_size=2", ""},
		{"service=etl servicefile='" + service + "' pool_timeout=2 user=u",
			"service=etl servicefile='" + service + "' user=u"},
		{"postgresql:///?service=etl&servicefile=" + url.PathEscape(service) + "&poolclass=null",
			"postgresql:///?service=etl&servicefile=" + url.PathEscape(service)},
	}
	for _, c := range cases {
		cfg, err := ParseConfig(c.in)
		require.NoError(t, err, c.in)
		e, err := NewWithConfig(cfg)
		require.NoError(t, err, c.in)
		got := e.connector.(*pgxdriver.Connector).ConnConfig()
		want, err := pgx.ParseConfig(c.pgx)
		require.NoError(t, err, c.pgx)
		assert.Equal(t, viewOf(want), viewOf(got), c.in)
		require.NoError(t, e.Close())
	}
}

func TestConnStringKeys(t *testing.T) {
	cfg, err := ParseConfig("postgresql://h/db?default_query_exec_mode=cache_describe")
	require.NoError(t, err)
	assert.Equal(t, CacheDescribe, cfg.StatementCache, "pgx's key is gosqla's statement_cache")
	_, err = ParseConfig("postgresql://h/db?default_query_exec_mode=simple_protocol&statement_cache=prepare")
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "give one of them")

	for key, hint := range map[string]string{"pool_max_conns": "pool_size / max_overflow", "pool_min_conns": "pool_size",
		"pool_max_conn_lifetime": "pool_recycle", "pool_health_check_period": "pool_pre_ping"} {
		_, err = ParseConfig("postgresql://h/db?" + key + "=4")
		require.ErrorIs(t, err, ErrInvalidConfig, key)
		assert.Contains(t, err.Error(), "did you mean "+hint, key)
	}
	for key, want := range map[string]string{"max_overflw": "max_overflow", "pool_sise": "pool_size", "statment_cache": "statement_cache",
		"ech": "echo", "workres": "workers", "cancel_grase": "cancel_grace"} {
		for _, s := range []string{"postgresql://h/db?" + key + "=1", "host=h " + key + "=1"} {
			_, err = ParseConfig(s)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce, s)
			assert.Contains(t, err.Error(), "did you mean "+want+"?", s)
		}
	}
	_, err = ParseConfig("sqlite:///x.db?busy_timeout=5")
	require.ErrorIs(t, err, ErrInvalidConfig, "unknown keys on SQLite are an error")
	assert.Contains(t, err.Error(), "_busy_timeout")
	cfg, err = ParseConfig("sqlite:///x.db?_txlock=immediate&mode=rwc")
	require.NoError(t, err)
	assert.Contains(t, cfg.DSN, "_txlock=immediate&mode=rwc")

	cfg, err = ParseConfig("host=h dbname=app pool_size=7 echo=true")
	require.NoError(t, err)
	assert.Equal(t, DriverPgx, cfg.Driver)
	assert.Equal(t, 7, cfg.PoolSize)
	assert.True(t, cfg.Echo)
	assert.Equal(t, "host=h dbname=app", cfg.DSN)
}

func TestDriverMustBeRegistered(t *testing.T) {
	cfg, err := ParseConfig("sqlite://")
	require.NoError(t, err)
	cfg.Driver = "mysql"
	_, err = NewWithConfig(cfg)
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), "pgx, sqlite, stdlib")
	cfg.Driver = ""
	_, err = NewWithConfig(cfg)
	require.ErrorAs(t, err, &ce)
}
