package cloudtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certificates names the PEM files written by [NewCertificates]. Keys are unencrypted
// PKCS #8; certificates are valid from an hour ago for a day.
type Certificates struct {
	// CAFile is the self-signed CA certificate that signed the other two; CAKey is its
	// key, for [Certificates.IssueClient].
	CAFile, CAKey string
	// ServerCert and ServerKey are for a server on the loopback interface: the
	// certificate's SANs are DNS:localhost, DNS:127.0.0.1 and IP:127.0.0.1 (Proton checks
	// a host name only against DNS SANs, Go's crypto/tls uses the IP SAN).
	ServerCert, ServerKey string
	// ClientCert and ClientKey are a client certificate whose subject common name is
	// ClientName, the user name a SASL EXTERNAL login maps to.
	ClientCert, ClientKey string
	ClientName            string
}

// NewCertificates generates a throwaway CA, a server certificate and a client
// certificate for clientName and writes them as PEM files into dir (which must exist).
// It fails the test on any error. It costs a few milliseconds (ECDSA P-256).
func NewCertificates(t testing.TB, dir, clientName string) Certificates {
	t.Helper()
	c, err := writeCertificates(dir, clientName)
	if err != nil {
		t.Fatalf("cloudtest: certificates: %v", err)
	}
	return c
}

func writeCertificates(dir, clientName string) (Certificates, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Certificates{}, err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "shadowgw test CA " + randomString(4), Organization: []string{"shadowgw cloudtest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := sign(caTmpl, caTmpl, caKey, caKey)
	if err != nil {
		return Certificates{}, fmt.Errorf("ca: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return Certificates{}, fmt.Errorf("ca: %w", err)
	}

	c := Certificates{
		CAFile:     filepath.Join(dir, "ca.pem"),
		CAKey:      filepath.Join(dir, "ca-key.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
		ClientName: clientName,
	}
	if err := writePEM(c.CAFile, "CERTIFICATE", caDER); err != nil {
		return Certificates{}, err
	}
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return Certificates{}, err
	}
	if err := writePEM(c.CAKey, "PRIVATE KEY", caKeyDER); err != nil {
		return Certificates{}, err
	}

	leaves := []struct {
		certFile, keyFile string
		tmpl              *x509.Certificate
	}{
		{c.ServerCert, c.ServerKey, &x509.Certificate{
			Subject:     pkix.Name{CommonName: "localhost"},
			DNSNames:    []string{"localhost", "127.0.0.1"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}},
		{c.ClientCert, c.ClientKey, &x509.Certificate{
			Subject:     pkix.Name{CommonName: clientName},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}},
	}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return Certificates{}, err
		}
		l.tmpl.NotBefore = now.Add(-time.Hour)
		l.tmpl.NotAfter = now.Add(24 * time.Hour)
		l.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := sign(l.tmpl, caCert, key, caKey)
		if err != nil {
			return Certificates{}, fmt.Errorf("%s: %w", l.certFile, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return Certificates{}, err
		}
		if err := writePEM(l.certFile, "CERTIFICATE", der); err != nil {
			return Certificates{}, err
		}
		if err := writePEM(l.keyFile, "PRIVATE KEY", keyDER); err != nil {
			return Certificates{}, err
		}
	}
	return c, nil
}

// sign issues tmpl, signed by parent's key, with a random serial number.
func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, parentKey crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
}

func writePEM(path, blockType string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	return os.WriteFile(path, data, 0o600)
}

// IssueClient issues another client certificate for name from the same CA, with a
// new key and serial number, and writes it and its key to certFile and keyFile
// (replacing them atomically, as a certificate rotation would). It returns the
// certificate's SHA-256 fingerprint in hex, as crypto/tls would present it.
func (c Certificates) IssueClient(t testing.TB, name, certFile, keyFile string) string {
	t.Helper()
	fp, err := issueClient(c, name, certFile, keyFile)
	if err != nil {
		t.Fatalf("cloudtest: issue client certificate: %v", err)
	}
	return fp
}

func issueClient(c Certificates, name, certFile, keyFile string) (string, error) {
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		return "", err
	}
	keyPEM, err := os.ReadFile(c.CAKey)
	if err != nil {
		return "", err
	}
	cb, _ := pem.Decode(caPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return "", fmt.Errorf("no PEM block in %s or %s", c.CAFile, c.CAKey)
	}
	caCert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return "", err
	}
	caKey, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return "", err
	}
	signer, ok := caKey.(crypto.Signer)
	if !ok {
		return "", fmt.Errorf("CA key is %T, not a signer", caKey)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	now := time.Now()
	der, err := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
	}, caCert, key, signer)
	if err != nil {
		return "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{keyFile, "PRIVATE KEY", keyDER}, {certFile, "CERTIFICATE", der}} {
		tmp := f.path + ".new"
		if err := writePEM(tmp, f.typ, f.der); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return "", err
		}
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}
