package hw

import (
	"fmt"

	"periph.io/x/conn/v3/i2c"

	"github.com/shadowgw/shadowgw/hw/ads1115"
	"github.com/shadowgw/shadowgw/hw/bme280"
	"github.com/shadowgw/shadowgw/hw/sht3x"
)

// Found is a device that answered a probe on an I²C bus.
type Found struct {
	Addr   uint16
	Kind   Kind   // the input kind to configure for it, or "" when unsupported
	Chip   string // the likely chip: "BME280", "SHT3x", "ADS1115?"
	Detail string // what the probe read
}

// ScanI2C probes the addresses of the supported chips on bus, in ascending order, and
// returns those that answered, naming the likely chip from an identifying register:
// the chip-id register 0xD0 at 0x76 and 0x77 (BME280 0x60, BMP280 0x58), the status
// register, with a valid CRC, at 0x44 and 0x45 (SHT3x), and the config register at
// 0x48 to 0x4B (ADS1115; its power-on value is 0x8583). Probes only read, except the
// SHT3x status command, a two-byte write.
func ScanI2C(bus i2c.Bus) []Found {
	var found []Found
	for _, addr := range []uint16{sht3x.AddrLow, sht3x.AddrHigh} {
		if st, err := sht3x.ReadStatus(bus, addr); err == nil {
			found = append(found, Found{addr, SHT3x, "SHT3x", fmt.Sprintf("status register 0x%04x, CRC valid", st)})
		}
	}
	for _, addr := range ADS1115.Addresses() {
		cfg, err := ads1115.ReadConfig(bus, addr)
		switch {
		case err != nil:
		case cfg == ads1115.PowerOnConfig:
			found = append(found, Found{addr, ADS1115, "ADS1115", fmt.Sprintf("config register 0x%04x, its power-on value", cfg)})
		default:
			found = append(found, Found{addr, ADS1115, "ADS1115?", fmt.Sprintf("config register 0x%04x: configured since power-on, or another chip", cfg)})
		}
	}
	for _, addr := range []uint16{bme280.AddrLow, bme280.AddrHigh} {
		id, err := bme280.ReadChipID(bus, addr)
		switch {
		case err != nil:
		case id == bme280.BME280:
			found = append(found, Found{addr, BME280, "BME280", "chip id 0x60"})
		case id == bme280.BMP280 || id == 0x56 || id == 0x57:
			found = append(found, Found{addr, BMP280, "BMP280", fmt.Sprintf("chip id 0x%02x", uint8(id))})
		case id == 0x61:
			found = append(found, Found{addr, "", "BME680 (not supported)", "chip id 0x61"})
		default:
			found = append(found, Found{addr, "", "unknown", fmt.Sprintf("chip id register 0x%02x", uint8(id))})
		}
	}
	return found
}
