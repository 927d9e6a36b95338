using System.Buffers.Binary;
using System.Device.I2c;

namespace EdgeSlm.EdgeModule.Tests.Telemetry;

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
