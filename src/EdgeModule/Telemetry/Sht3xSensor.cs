using System.Device.I2c;
using Iot.Device.Sht3x;

namespace EdgeSlm.EdgeModule.Telemetry;

/// <summary>
/// A Sensirion SHT3x through the <see cref="Sht3x"/> binding (single-shot, high repeatability). The binding's
/// getters each make a measurement, but when a frame's CRC is wrong they quietly return the previous values;
/// so the device is wrapped to keep the frame the binding read, and its CRCs are checked here.
/// </summary>
public sealed class Sht3xSensor : EnvironmentSensor
{
    private readonly FrameRecordingI2cDevice _recorder;
    private Sht3x? _sht3x;

    public Sht3xSensor(I2cDevice device)
        : this(new FrameRecordingI2cDevice(device))
    {
    }

    private Sht3xSensor(FrameRecordingI2cDevice recorder)
        : base(recorder)
    {
        _recorder = recorder;
    }

    public override string Name => "sht3x";

    public override EnvironmentReading Read()
    {
        try
        {
            // Sends a soft reset.
            _sht3x ??= new Sht3x(Device);

            _recorder.ForgetFrame();
            double temperatureC = _sht3x.Temperature.DegreesCelsius;
            if (FrameError() is { } temperatureError)
            {
                return EnvironmentReading.Failure(Name, temperatureError);
            }

            _recorder.ForgetFrame();
            double humidityPercent = _sht3x.Humidity.Percent;
            if (FrameError() is { } humidityError)
            {
                return EnvironmentReading.Failure(Name, humidityError);
            }

            return EnvironmentReading.Success(Name, temperatureC, humidityPercent, pressureHpa: null);
        }
        catch (Exception e) when (IsDeviceFailure(e))
        {
            return Failure(e);
        }
    }

    /// <summary>Null when the binding read a whole frame whose two words match their CRCs.</summary>
    private string? FrameError()
    {
        ReadOnlySpan<byte> frame = _recorder.LastFrame;
        if (frame.Length < 6)
        {
            return "the SHT3x sent no measurement";
        }

        if (Crc8(frame[..2]) != frame[2])
        {
            return "the SHT3x temperature word failed its CRC";
        }

        if (Crc8(frame[3..5]) != frame[5])
        {
            return "the SHT3x humidity word failed its CRC";
        }

        return null;
    }

    /// <summary>Sensirion's CRC-8: polynomial 0x31, initial value 0xFF, no reflection, no final XOR.</summary>
    internal static byte Crc8(ReadOnlySpan<byte> data)
    {
        byte crc = 0xFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int bit = 0; bit < 8; bit++)
            {
                crc = (crc & 0x80) != 0 ? (byte)((crc << 1) ^ 0x31) : (byte)(crc << 1);
            }
        }

        return crc;
    }


    /// <summary>Passes every transfer through and keeps a copy of the last 6-byte read.</summary>
    private sealed class FrameRecordingI2cDevice(I2cDevice inner) : I2cDevice
    {
        private readonly byte[] _frame = new byte[6];
        private int _frameLength;

        public ReadOnlySpan<byte> LastFrame => _frame.AsSpan(0, _frameLength);

        public override I2cConnectionSettings ConnectionSettings => inner.ConnectionSettings;

        public void ForgetFrame() => _frameLength = 0;

        public override byte ReadByte() => inner.ReadByte();

        public override void Read(Span<byte> buffer)
        {
            inner.Read(buffer);
            Record(buffer);
        }

        public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);

        public override void WriteByte(byte value) => inner.WriteByte(value);

        public override void WriteRead(ReadOnlySpan<byte> writeBuffer, Span<byte> readBuffer)
        {
            inner.WriteRead(writeBuffer, readBuffer);
            Record(readBuffer);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        private void Record(ReadOnlySpan<byte> data)
        {
            if (data.Length == _frame.Length)
            {
                data.CopyTo(_frame);
                _frameLength = data.Length;
            }
        }
    }
}
