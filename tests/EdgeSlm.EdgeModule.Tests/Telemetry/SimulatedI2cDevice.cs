using System.Buffers.Binary;
using System.Device.I2c;

namespace EdgeSlm.EdgeModule.Tests.Telemetry;

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
