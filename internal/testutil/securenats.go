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

// PKI is a throw-away CA and a server certificate it signed for 127.0.0.1
// and localhost, valid for an hour either side of now.
type PKI struct {
	CAFile    string      // PEM certificate of the CA: what clients trust
	ServerTLS *tls.Config // the server's certificate and key
	// CertFile and KeyFile hold ServerTLS's certificate and key as PEM,
	// for servers that load their certificate from files.
	CertFile, KeyFile string

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// NewPKI makes a PKI and writes the CA certificate, and the server's
// certificate and key, to files in t.TempDir().
func NewPKI(t testing.TB) PKI {
	t.Helper()
	now := time.Now()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nylon test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := PKI{ca: ca, caKey: caKey}
	certPEM, keyPEM := p.ServerPair(t)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	p.CAFile = writeFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	p.ServerTLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	dir := t.TempDir()
	p.CertFile, p.KeyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(p.CertFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.KeyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ServerPair issues a new server certificate for 127.0.0.1 and localhost,
// signed by the CA, with a random serial and a key of its own, and returns
// it and its key as PEM: what a certificate rotation writes over the files.
func (p PKI) ServerPair(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	srvKey := newKey(t)
	srvTmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    p.ca.NotBefore,
		NotAfter:     p.ca.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, p.ca, &srvKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER})
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// NKeyUser makes an nkey user and writes its seed to a file in
// t.TempDir(): the public key goes into the server's options, the seed
// file to the client.
func NKeyUser(t testing.TB) (pub, seedFile string) {
	t.Helper()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err = user.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	return pub, writeFile(t, "user.nk", seed)
}

// writeFile writes data to a new file named name in its own t.TempDir().
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// SecureNATS is a nats-server reachable the way any environment but dev
// must reach NATS (natsconn's security rule): TLS, and an nkey user.
type SecureNATS struct {
	Server   *server.Server
	URL      string // tls://127.0.0.1:<port>
	CAFile   string // PEM certificate of the CA that signed the server's
	SeedFile string // the nkey user's seed
}

// RunSecureNATS starts a nats-server (RunNATSWith) with TLS (NewPKI) and a
// single nkey user (NKeyUser).
func RunSecureNATS(t testing.TB) SecureNATS {
	t.Helper()
	pki := NewPKI(t)
	pub, seedFile := NKeyUser(t)
	opts := NATSOptions(t)
	opts.TLSConfig = pki.ServerTLS
	opts.TLSTimeout = 2
	opts.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	sn := SecureNATS{Server: RunNATSWith(t, opts), CAFile: pki.CAFile, SeedFile: seedFile}
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
