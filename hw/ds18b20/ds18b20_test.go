package ds18b20

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCRC8(t *testing.T) {
	// Maxim application note 27's example: ROM family 0x02, serial 0x000001B81C, CRC
	// 0xA2; and a scratchpad as the kernel prints it (23.125 °C).
	if got := CRC8([]byte{0x02, 0x1C, 0xB8, 0x01, 0x00, 0x00, 0x00}); got != 0xA2 {
		t.Errorf("CRC8(AN27 ROM) = 0x%02x, want 0xA2", got)
	}
	if got := CRC8([]byte{0x72, 0x01, 0x4b, 0x46, 0x7f, 0xff, 0x0e, 0x10}); got != 0x57 {
		t.Errorf("CRC8(scratchpad) = 0x%02x, want 0x57", got)
	}
}

// slave returns the content of a w1_slave file for a scratchpad holding the 12-bit
// temperature raw (1/16 °C), with a correct CRC unless badCRC, and the kernel's
// verdict.
func slave(raw int16, badCRC bool) string {
	sp := []byte{byte(raw), byte(uint16(raw) >> 8), 0x4b, 0x46, 0x7f, 0xff, 0x0e, 0x10}
	crc := CRC8(sp)
	verdict := "YES"
	if badCRC {
		crc ^= 0x5A
		verdict = "NO"
	}
	hex := ""
	for _, b := range append(sp, crc) {
		hex += fmt.Sprintf("%02x ", b)
	}
	return fmt.Sprintf("%s: crc=%02x %s\n%st=%d\n", hex, crc, verdict, hex, int(raw)*1000/16)
}

func TestParseSlave(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    int32
		wantErr string
		crc     bool
	}{
		{"kernel example", "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n", 23125, "", false},
		{"negative", slave(-401, false), -25062, "", false}, // data sheet Table 1: FE6Fh is -25.0625 °C
		{"kernel crc NO", slave(0x0191, true), 0, "kernel reports crc=", true},
		{"crc wrong but kernel says YES", "72 01 4b 46 7f ff 0e 10 58 : crc=58 YES\n72 01 4b 46 7f ff 0e 10 58 t=23125\n", 0, "computed 0x57", true},
		{"all zeros", "00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n", 0, "no device answered", false},
		{"power-on 85", slave(0x0550, false), 0, "power-on value", false},
		{"one line", "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n", 0, "want 2 lines", false},
		{"garbage", "hello\nworld\n", 0, "malformed first line", false},
		{"short scratchpad", "72 01 : crc=57 YES\nt=1\n", 0, "want 9 scratchpad bytes", false},
		{"no t=", "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57\n", 0, "no t=", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSlave([]byte(tt.data))
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("ParseSlave() = %d, %v; want %d", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSlave() error = %v, want one containing %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrCRC) != tt.crc {
				t.Errorf("errors.Is(%v, ErrCRC) = %v, want %v", err, !tt.crc, tt.crc)
			}
		})
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSysfs(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(empty dir) error = %v, want ErrNotFound", err)
	}
	// The bus master and a device of another family are not DS18B20s.
	writeFile(t, filepath.Join(dir, "w1_bus_master1", "w1_master_slaves"), "28-0316a2795aff\n")
	writeFile(t, filepath.Join(dir, "10-000802b4c5e1", "w1_slave"), "")
	writeFile(t, filepath.Join(dir, "28-0316a2795aff", "w1_slave"), slave(0x0191, false))
	d, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if d.ID() != "28-0316a2795aff" || d.String() != "DS18B20 28-0316a2795aff" {
		t.Errorf("Open() = %v", d)
	}
	if mc, err := d.Sense(); err != nil || mc != 25062 { // 0x191/16 = 25.0625 °C
		t.Errorf("Sense() = %d, %v; want 25062", mc, err)
	}

	// A second sensor: Open needs to be told which one.
	writeFile(t, filepath.Join(dir, "28-00000a1b2c3d", "temperature"), "-10125\n")
	if _, err := Open(dir, ""); err == nil || !strings.Contains(err.Error(), "28-00000a1b2c3d, 28-0316a2795aff") {
		t.Errorf("Open(two sensors) error = %v", err)
	}
	if ids, err := List(dir); err != nil || len(ids) != 2 {
		t.Errorf("List() = %v, %v", ids, err)
	}
	d2, err := Open(dir, "28-00000a1b2c3d")
	if err != nil {
		t.Fatal(err)
	}
	if mc, err := d2.Sense(); err != nil || mc != -10125 {
		t.Errorf("Sense() from the temperature file = %d, %v; want -10125", mc, err)
	}

	// Unplugged: the kernel removes the directory.
	if err := os.RemoveAll(filepath.Join(dir, "28-0316a2795aff")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Sense(); !errors.Is(err, ErrNotFound) {
		t.Errorf("Sense() of a removed sensor: error = %v, want ErrNotFound", err)
	}
	if _, err := Open(dir, "28-0316a2795aff"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(removed) error = %v, want ErrNotFound", err)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{"28-0316a2795aff": true, "10-000802b4c5e1": true, "28-0316A2795AFF": false, "28-0316a2795af": false, "w1_bus_master1": false} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %v", id, !want)
		}
	}
}

// FuzzParseSlave: no panic on any file content, and a temperature only from a
// scratchpad whose CRC matches.
func FuzzParseSlave(f *testing.F) {
	f.Add("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n")
	f.Add(slave(0x0550, false))
	f.Add(slave(-401, true))
	f.Fuzz(func(t *testing.T, data string) {
		if _, err := ParseSlave([]byte(data)); err == nil && !strings.Contains(data, "YES") {
			t.Errorf("ParseSlave(%q) accepted a file without YES", data)
		}
	})
}
