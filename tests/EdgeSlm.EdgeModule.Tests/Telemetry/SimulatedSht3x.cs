using System.Buffers.Binary;
using System.Device.I2c;

namespace EdgeSlm.EdgeModule.Tests.Telemetry;

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
