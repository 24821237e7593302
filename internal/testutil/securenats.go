package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// SecureNATS is a nats-server reachable the way any environment but dev
// must reach NATS (natsconn's security rule): TLS, and an nkey user.
type SecureNATS struct {
	Server   *server.Server
	URL      string // tls://127.0.0.1:<port>
	CAFile   string // PEM certificate that verifies the server (its own, self-signed)
	SeedFile string // the nkey user's seed
}

// RunSecureNATS starts a nats-server (RunNATSWith) with TLS on a throw-away
// self-signed certificate for 127.0.0.1 and a single nkey user, and writes
// the certificate and the user's seed to files in t.TempDir().
func RunSecureNATS(t testing.TB) SecureNATS {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}

	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := user.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}

	sn := SecureNATS{CAFile: filepath.Join(dir, "ca.pem"), SeedFile: filepath.Join(dir, "user.nk")}
	if err := os.WriteFile(sn.CAFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sn.SeedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := NATSOptions(t)
	opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	opts.TLSTimeout = 2
	opts.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	sn.Server = RunNATSWith(t, opts)
	sn.URL = sn.Server.ClientURL()
	return sn
}

// Connect opens a client connection as the nkey user, closed when the test
// ends.
func (s SecureNATS) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nkey, err := nats.NkeyOptionFromSeed(s.SeedFile)
	if err != nil {
		t.Fatal(err)
	}
	return Connect(t, s.Server, nats.RootCAs(s.CAFile), nkey)
}
