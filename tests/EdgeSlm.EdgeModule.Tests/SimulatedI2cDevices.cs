using System.Buffers.Binary;
using System.Device.I2c;

namespace EdgeSlm.EdgeModule.Tests;

/// <summary>
/// The bus side shared by the simulated chips: a device that can be unplugged, in which case every transfer
/// fails the way the Linux i2c-dev driver reports a NAK on the address byte (EREMOTEIO, "Remote I/O error").
/// </summary>
internal abstract class SimulatedI2cDevice : I2cDevice
{
    private readonly I2cConnectionSettings _settings;

    protected SimulatedI2cDevice(int address) => _settings = new I2cConnectionSettings(1, address);

    public override I2cConnectionSettings ConnectionSettings => _settings;

    /// <summary>While true the chip does not acknowledge its address: every read and write throws.</summary>
    public bool Unplugged { get; set; }

    public bool Disposed { get; private set; }

    public override byte ReadByte()
    {
        Span<byte> one = stackalloc byte[1];
        Read(one);
        return one[0];
    }

    public override void WriteByte(byte value) => Write([value]);

    public override void Read(Span<byte> buffer)
    {
        ThrowIfUnplugged();
        OnRead(buffer);
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ThrowIfUnplugged();
        OnWrite(buffer);
    }

    public override void WriteRead(ReadOnlySpan<byte> writeBuffer, Span<byte> readBuffer)
    {
        Write(writeBuffer);
        Read(readBuffer);
    }

    protected abstract void OnRead(Span<byte> buffer);

    protected abstract void OnWrite(ReadOnlySpan<byte> buffer);

    protected override void Dispose(bool disposing)
    {
        Disposed = true;
        base.Dispose(disposing);
    }

    private void ThrowIfUnplugged()
    {
        if (Unplugged)
        {
            throw new IOException($"Error 121 performing I2C data transfer (no acknowledge from 0x{_settings.DeviceAddress:X2}).");
        }
    }
}

/// <summary>
/// A BME280 modelled at the register level (Bosch BST-BME280-DS002, section 5.3, memory map):
/// chip id 0x60 at 0xD0, trimming parameters at 0x88..0xA1 and 0xE1..0xE7, ctrl_hum 0xF2, status 0xF3,
/// ctrl_meas 0xF4, config 0xF5, reset 0xE0 and the burst-readable data block 0xF7..0xFE
/// (press_msb, press_lsb, press_xlsb, temp_msb, temp_lsb, temp_xlsb, hum_msb, hum_lsb).
/// I2C protocol (section 6.2): a write is a register address followed by (address, value) pairs, the first
/// address also setting the read pointer; reads start at the pointer and auto-increment.
/// A measurement happens when ctrl_meas is written with mode forced (01 or 10, back to sleep afterwards) or
/// normal (11); only then are the ADC values copied into the data registers, and a skipped channel
/// (oversampling 0) reads 0x80000 (0x8000 for humidity), as on the chip. ctrl_hum takes effect at the next
/// ctrl_meas write.
/// </summary>
internal sealed class SimulatedBme280 : SimulatedI2cDevice
{
    public const byte ChipIdRegister = 0xD0;
    public const byte ResetRegister = 0xE0;
    public const byte CtrlHumRegister = 0xF2;
    public const byte StatusRegister = 0xF3;
    public const byte CtrlMeasRegister = 0xF4;
    public const byte ConfigRegister = 0xF5;
    public const byte DataRegister = 0xF7;

    private readonly byte[] _registers = new byte[256];
    private readonly Bme280Calibration _calibration;
    private readonly byte _chipId;
    private byte _pointer;
    private byte _latchedCtrlHum;

    /// <param name="chipId">0x60 for a BME280; 0x58 makes it answer like a BMP280, which has no humidity.</param>
    public SimulatedBme280(Bme280Calibration calibration, int address = 0x76, byte chipId = 0x60)
        : base(address)
    {
        _calibration = calibration;
        _chipId = chipId;
        PowerOnReset();
    }

    /// <summary>The 20-bit temperature ADC value the next measurement produces (adc_T).</summary>
    public int AdcTemperature { get; set; } = 0x80000;

    /// <summary>The 20-bit pressure ADC value the next measurement produces (adc_P).</summary>
    public int AdcPressure { get; set; } = 0x80000;

    /// <summary>The 16-bit humidity ADC value the next measurement produces (adc_H).</summary>
    public int AdcHumidity { get; set; } = 0x8000;

    /// <summary>How many measurements the chip has made: each one refreshes the data registers.</summary>
    public int Measurements { get; private set; }

    public byte Register(byte address) => _registers[address];

    /// <summary>A brown-out: the chip comes back as at power-on, every channel skipped and in sleep mode.</summary>
    public void PowerCycle() => PowerOnReset();

    protected override void OnWrite(ReadOnlySpan<byte> buffer)
    {
        if (buffer.Length == 0)
        {
            return;
        }

        _pointer = buffer[0];
        for (int i = 0; i + 1 < buffer.Length; i += 2)
        {
            WriteRegister(buffer[i], buffer[i + 1]);
        }
    }

    protected override void OnRead(Span<byte> buffer)
    {
        for (int i = 0; i < buffer.Length; i++)
        {
            buffer[i] = _registers[_pointer];
            _pointer = (byte)(_pointer + 1);
        }
    }

    private void WriteRegister(byte address, byte value)
    {
        switch (address)
        {
            case ResetRegister when value == 0xB6:
                PowerOnReset();
                break;
            case CtrlHumRegister:
                _registers[address] = (byte)(value & 0b111);
                break;
            case ConfigRegister:
                _registers[address] = (byte)(value & 0b1111_1101);
                break;
            case CtrlMeasRegister:
                _registers[address] = value;
                _latchedCtrlHum = _registers[CtrlHumRegister];
                int mode = value & 0b11;
                if (mode != 0b00)
                {
                    Measure(value);
                }

                if (mode is 0b01 or 0b10)
                {
                    // Forced mode: one conversion, then the chip returns to sleep by itself.
                    _registers[address] = (byte)(value & 0b1111_1100);
                }

                break;
            default:
                // Chip id, trimming parameters, status and data registers are read-only.
                break;
        }
    }

    private void Measure(byte ctrlMeas)
    {
        int temperatureOversampling = ctrlMeas >> 5;
        int pressureOversampling = (ctrlMeas >> 2) & 0b111;
        int humidityOversampling = _latchedCtrlHum & 0b111;
        Write20Bit(DataRegister, pressureOversampling == 0 ? 0x80000 : AdcPressure);
        Write20Bit(DataRegister + 3, temperatureOversampling == 0 ? 0x80000 : AdcTemperature);
        BinaryPrimitives.WriteUInt16BigEndian(_registers.AsSpan(DataRegister + 6), (ushort)(humidityOversampling == 0 ? 0x8000 : AdcHumidity));
        Measurements++;
    }

    private void Write20Bit(int address, int value)
    {
        _registers[address] = (byte)(value >> 12);
        _registers[address + 1] = (byte)(value >> 4);
        _registers[address + 2] = (byte)((value & 0xF) << 4);
    }

    private void PowerOnReset()
    {
        Array.Clear(_registers);
        _registers[ChipIdRegister] = _chipId;
        _calibration.WriteTo(_registers);
        _registers[DataRegister] = 0x80;
        _registers[DataRegister + 3] = 0x80;
        _registers[DataRegister + 6] = 0x80;
        _latchedCtrlHum = 0;
        _pointer = 0;
    }
}

/// <summary>
/// The BME280 trimming parameters (datasheet table 16) and the datasheet's double-precision compensation
/// formulas (section 8.1), used by the tests to turn a wanted reading into raw ADC values.
/// </summary>
internal sealed record Bme280Calibration(
    ushort T1, short T2, short T3,
    ushort P1, short P2, short P3, short P4, short P5, short P6, short P7, short P8, short P9,
    byte H1, short H2, byte H3, short H4, short H5, sbyte H6)
{
    /// <summary>
    /// T and P: the worked example of Bosch's BMP280 datasheet (BST-BMP280-DS001, section 3.12), read from a
    /// real part (adc_T 519888 gives 25.08 °C, adc_P 415148 gives 100653.27 Pa). H: the humidity trimming values
    /// commonly read back from BME280 breakout boards (dig_H1..H6 = 75, 362, 0, 313, 50, 30).
    /// </summary>
    public static Bme280Calibration Example { get; } = new(
        27504, 26435, -1000,
        36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000,
        75, 362, 0, 313, 50, 30);

    /// <summary>Lays the parameters out as the chip stores them: little-endian words at 0x88..0x9F, dig_H1 at 0xA1,
    /// dig_H2 at 0xE1..0xE2, dig_H3 at 0xE3, dig_H4 as 0xE4[7:0] and 0xE5[3:0], dig_H5 as 0xE5[7:4] and 0xE6[7:0],
    /// dig_H6 at 0xE7.</summary>
    public void WriteTo(Span<byte> registers)
    {
        ReadOnlySpan<ushort> words = [T1, (ushort)T2, (ushort)T3, P1, (ushort)P2, (ushort)P3, (ushort)P4, (ushort)P5, (ushort)P6, (ushort)P7, (ushort)P8, (ushort)P9];
        for (int i = 0; i < words.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(registers[(0x88 + 2 * i)..], words[i]);
        }

        registers[0xA1] = H1;
        BinaryPrimitives.WriteInt16LittleEndian(registers[0xE1..], H2);
        registers[0xE3] = H3;
        registers[0xE4] = (byte)(H4 >> 4);
        registers[0xE5] = (byte)(((H5 & 0xF) << 4) | (H4 & 0xF));
        registers[0xE6] = (byte)(H5 >> 4);
        registers[0xE7] = (byte)H6;
    }

    /// <summary>t_fine and °C for a temperature ADC value.</summary>
    public (double TFine, double Celsius) CompensateTemperature(int adcT)
    {
        double var1 = (adcT / 16384.0 - T1 / 1024.0) * T2;
        double var2 = (adcT / 131072.0 - T1 / 8192.0) * (adcT / 131072.0 - T1 / 8192.0) * T3;
        double tFine = var1 + var2;
        return (tFine, tFine / 5120.0);
    }

    /// <summary>Pascal for a pressure ADC value at the given t_fine.</summary>
    public double CompensatePressure(int adcP, double tFine)
    {
        double var1 = tFine / 2.0 - 64000.0;
        double var2 = var1 * var1 * P6 / 32768.0;
        var2 += var1 * P5 * 2.0;
        var2 = var2 / 4.0 + P4 * 65536.0;
        var1 = (P3 * var1 * var1 / 524288.0 + P2 * var1) / 524288.0;
        var1 = (1.0 + var1 / 32768.0) * P1;
        double p = 1048576.0 - adcP;
        p = (p - var2 / 4096.0) * 6250.0 / var1;
        var1 = P9 * p * p / 2147483648.0;
        var2 = p * P8 / 32768.0;
        return p + (var1 + var2 + P7) / 16.0;
    }

    /// <summary>%RH for a humidity ADC value at the given t_fine (not clamped).</summary>
    public double CompensateHumidity(int adcH, double tFine)
    {
        double h = tFine - 76800.0;
        h = (adcH - (H4 * 64.0 + H5 / 16384.0 * h)) *
            (H2 / 65536.0 * (1.0 + H6 / 67108864.0 * h * (1.0 + H3 / 67108864.0 * h)));
        return h * (1.0 - H1 * h / 524288.0);
    }

    /// <summary>The raw values whose compensation is closest to the wanted reading (each formula is monotonic in
    /// its ADC value, so a bisection finds it): temperature rises with adc_T, pressure falls with adc_P,
    /// humidity rises with adc_H.</summary>
    public (int AdcT, int AdcP, int AdcH) RawFor(double celsius, double hectopascals, double humidityPercent)
    {
        int adcT = Bisect(0, (1 << 20) - 1, adc => CompensateTemperature(adc).Celsius, celsius, increasing: true);
        double tFine = CompensateTemperature(adcT).TFine;
        int adcP = Bisect(0, (1 << 20) - 1, adc => CompensatePressure(adc, tFine) / 100.0, hectopascals, increasing: false);
        int adcH = Bisect(0, ushort.MaxValue, adc => CompensateHumidity(adc, tFine), humidityPercent, increasing: true);
        return (adcT, adcP, adcH);
    }

    private static int Bisect(int low, int high, Func<int, double> f, double target, bool increasing)
    {
        while (high - low > 1)
        {
            int middle = low + (high - low) / 2;
            bool below = increasing ? f(middle) < target : f(middle) > target;
            if (below)
            {
                low = middle;
            }
            else
            {
                high = middle;
            }
        }

        return Math.Abs(f(low) - target) <= Math.Abs(f(high) - target) ? low : high;
    }
}

/// <summary>
/// An SHT3x modelled at the command level (Sensirion SHT3x-DIS datasheet, section 4): 16-bit commands sent
/// MSB first; a single-shot measurement command (0x24xx without clock stretching, 0x2Cxx with) makes the
/// next 6-byte read return temperature MSB, LSB, CRC, humidity MSB, LSB, CRC, each CRC-8 (polynomial 0x31,
/// init 0xFF) over its 16-bit word. A read with no measurement pending is not acknowledged, as on the chip.
/// Soft reset 0x30A2, heater on 0x306D and off 0x3066 are accepted.
/// </summary>
internal sealed class SimulatedSht3x : SimulatedI2cDevice
{
    private bool _measurementPending;

    public SimulatedSht3x(int address = 0x44)
        : base(address)
    {
    }

    /// <summary>The raw temperature word S_T of the next measurement: T = -45 + 175 * S_T / 65535.</summary>
    public ushort RawTemperature { get; set; }

    /// <summary>The raw humidity word S_RH of the next measurement: RH = 100 * S_RH / 65535.</summary>
    public ushort RawHumidity { get; set; }

    /// <summary>When true the chip sends a wrong CRC after the temperature word (a disturbed bus).</summary>
    public bool CorruptTemperatureCrc { get; set; }

    public bool HeaterOn { get; private set; }

    public int Measurements { get; private set; }

    public static ushort RawForCelsius(double celsius) => (ushort)Math.Round((celsius + 45.0) * 65535.0 / 175.0);

    public static ushort RawForHumidity(double percent) => (ushort)Math.Round(percent * 65535.0 / 100.0);

    /// <summary>Sensirion's CRC-8 (datasheet section 4.12): polynomial 0x31, init 0xFF, no reflection, no final XOR.</summary>
    public static byte Crc8(byte msb, byte lsb)
    {
        byte crc = 0xFF;
        foreach (byte b in (ReadOnlySpan<byte>)[msb, lsb])
        {
            crc ^= b;
            for (int bit = 0; bit < 8; bit++)
            {
                crc = (crc & 0x80) != 0 ? (byte)((crc << 1) ^ 0x31) : (byte)(crc << 1);
            }
        }

        return crc;
    }

    protected override void OnWrite(ReadOnlySpan<byte> buffer)
    {
        if (buffer.Length != 2)
        {
            throw new IOException($"SHT3x commands are two bytes; got {buffer.Length}.");
        }

        ushort command = BinaryPrimitives.ReadUInt16BigEndian(buffer);
        switch (command)
        {
            case 0x2400 or 0x240B or 0x2416 or 0x2C06 or 0x2C0D or 0x2C10:
                _measurementPending = true;
                Measurements++;
                break;
            case 0x30A2:
                _measurementPending = false;
                HeaterOn = false;
                break;
            case 0x306D:
                HeaterOn = true;
                break;
            case 0x3066:
                HeaterOn = false;
                break;
            default:
                throw new IOException($"SHT3x does not acknowledge command 0x{command:X4}.");
        }
    }

    protected override void OnRead(Span<byte> buffer)
    {
        if (!_measurementPending)
        {
            throw new IOException("SHT3x does not acknowledge a read with no measurement pending.");
        }

        _measurementPending = false;
        Span<byte> frame = stackalloc byte[6];
        BinaryPrimitives.WriteUInt16BigEndian(frame, RawTemperature);
        frame[2] = Crc8(frame[0], frame[1]);
        if (CorruptTemperatureCrc)
        {
            frame[2] ^= 0x5A;
        }

        BinaryPrimitives.WriteUInt16BigEndian(frame[3..], RawHumidity);
        frame[5] = Crc8(frame[3], frame[4]);
        frame[..Math.Min(6, buffer.Length)].CopyTo(buffer);
    }
}
