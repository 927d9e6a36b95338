using System.Device.I2c;
using Iot.Device.Bmxx80;

namespace EdgeSlm.EdgeModule.Telemetry;

/// <summary>
/// A Bosch BME280 through the <see cref="Bme280"/> binding, in forced mode: every <see cref="Read"/> starts
/// one conversion and reads its result. The binding is created at the first reading and again whenever the
/// chip is found to have lost its configuration.
/// </summary>
public sealed class Bme280Sensor : EnvironmentSensor
{
    private const byte CtrlHumRegister = 0xF2; // then status 0xF3 and ctrl_meas 0xF4

    private Bme280? _bme280;

    public Bme280Sensor(I2cDevice device)
        : base(device)
    {
    }

    public override string Name => "bme280";

    public override EnvironmentReading Read()
    {
        try
        {
            if (_bme280 is null || !ChipKeepsConfiguration(_bme280))
            {
                // Checks the chip id (0x60), reads the trimming parameters, sets x1 oversampling on all channels.
                _bme280 = new Bme280(Device);
            }

            var result = _bme280.Read();
            if (result.Temperature is not { } temperature || result.Pressure is not { } pressure || result.Humidity is not { } humidity)
            {
                return EnvironmentReading.Failure(Name, "the BME280 skipped a channel (oversampling set to skipped)");
            }

            return EnvironmentReading.Success(Name, temperature.DegreesCelsius, humidity.Percent, pressure.Hectopascals);
        }
        catch (Exception e) when (IsDeviceFailure(e))
        {
            return Failure(e);
        }
    }

    /// <summary>
    /// After a brown-out the chip comes back with every channel skipped, and its data registers then hold
    /// 0x80000 (0x8000 for humidity). The binding caches the oversampling it wrote and would turn those
    /// into plausible-looking numbers, so the registers are compared with what it believes before each reading.
    /// </summary>
    private bool ChipKeepsConfiguration(Bme280 bme280)
    {
        Span<byte> registers = stackalloc byte[3]; // ctrl_hum, status, ctrl_meas
        Device.WriteRead([CtrlHumRegister], registers);
        int humidity = registers[0] & 0b111;
        int pressure = (registers[2] >> 2) & 0b111;
        int temperature = registers[2] >> 5;
        return humidity == (int)bme280.HumiditySampling
            && pressure == (int)bme280.PressureSampling
            && temperature == (int)bme280.TemperatureSampling;
    }

}
