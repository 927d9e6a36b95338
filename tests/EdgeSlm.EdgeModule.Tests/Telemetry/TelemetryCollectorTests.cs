using System.Text.Json;
using EdgeSlm.EdgeModule.Telemetry;

namespace EdgeSlm.EdgeModule.Tests.Telemetry;

public sealed class TelemetryCollectorTests
{
    [Fact]
    public void Telemetry_json_carries_every_reading()
    {
        var calibration = Bme280Calibration.Example;
        var chip = new SimulatedBme280(calibration);
        (chip.AdcTemperature, chip.AdcPressure, chip.AdcHumidity) = calibration.RawFor(21.5, 1013.25, 45);
        using var environment = new Bme280Sensor(chip);
        using var cpu = new CpuTemperatureSensor();
        var statistics = new InferenceStatistics();
        for (int ms = 1; ms <= 100; ms++)
        {
            statistics.RecordCompleted(TimeSpan.FromMilliseconds(ms));
        }

        statistics.RecordFailed();
        statistics.SetQueueDepth(2);
        var clock = new ManualClock(new DateTimeOffset(2025, 6, 1, 12, 0, 0, TimeSpan.Zero));
        var collector = new TelemetryCollector("site-7", cpu, environment, statistics, new ThermalGovernor(80, 5, 4), clock);
        clock.Advance(TimeSpan.FromSeconds(90.7));

        TelemetrySnapshot snapshot = collector.Collect();
        using JsonDocument document = JsonDocument.Parse(TelemetryCollector.ToJson(snapshot));
        JsonElement root = document.RootElement;

        Assert.Equal("site-7", root.GetProperty("siteId").GetString());
        Assert.Equal(new DateTimeOffset(2025, 6, 1, 12, 1, 30, 700, TimeSpan.Zero), root.GetProperty("time").GetDateTimeOffset());
        Assert.Equal(90, root.GetProperty("uptimeSeconds").GetInt64());
        JsonElement cpuTemperature = root.GetProperty("cpuTemperatureC");
        Assert.Equal(snapshot.CpuTemperature.IsAvailable, cpuTemperature.ValueKind == JsonValueKind.Number);

        JsonElement env = root.GetProperty("environment");
        Assert.Equal("bme280", env.GetProperty("sensor").GetString());
        Assert.Equal(21.5, env.GetProperty("temperatureC").GetDouble(), 0.01);
        Assert.Equal(45.0, env.GetProperty("humidityPercent").GetDouble(), 0.01);
        Assert.Equal(1013.25, env.GetProperty("pressureHpa").GetDouble(), 0.01);
        Assert.Equal(JsonValueKind.Null, env.GetProperty("error").ValueKind);

        JsonElement inference = root.GetProperty("inference");
        Assert.Equal(100, inference.GetProperty("count").GetInt64());
        Assert.Equal(1, inference.GetProperty("errors").GetInt64());
        Assert.Equal(50.0, inference.GetProperty("p50Ms").GetDouble());
        Assert.Equal(99.0, inference.GetProperty("p99Ms").GetDouble());
        Assert.Equal(2, inference.GetProperty("queueDepth").GetInt32());
        Assert.InRange(inference.GetProperty("threads").GetInt32(), 1, 4);
        Assert.True(root.GetProperty("rssBytes").GetInt64() > 0);
    }

    [Fact]
    public void Telemetry_json_reports_a_failed_sensor_with_its_reason_and_no_values()
    {
        var chip = new SimulatedSht3x { Unplugged = true };
        using var environment = new Sht3xSensor(chip);
        using var cpu = new CpuTemperatureSensor();
        var collector = new TelemetryCollector("site-7", cpu, environment, new InferenceStatistics(), new ThermalGovernor(80, 5, 2));

        using JsonDocument document = JsonDocument.Parse(TelemetryCollector.ToJson(collector.Collect()));
        JsonElement env = document.RootElement.GetProperty("environment");

        Assert.Equal("sht3x", env.GetProperty("sensor").GetString());
        Assert.Equal(JsonValueKind.Null, env.GetProperty("temperatureC").ValueKind);
        Assert.Equal(JsonValueKind.Null, env.GetProperty("humidityPercent").ValueKind);
        Assert.Equal(JsonValueKind.Null, env.GetProperty("pressureHpa").ValueKind);
        Assert.Contains("0x44", env.GetProperty("error").GetString());
        JsonElement inference = document.RootElement.GetProperty("inference");
        Assert.Equal(JsonValueKind.Null, inference.GetProperty("p50Ms").ValueKind);
        Assert.Equal(JsonValueKind.Null, inference.GetProperty("p99Ms").ValueKind);
    }

    [Fact]
    public void Telemetry_json_without_an_environment_sensor_has_a_null_environment()
    {
        using var cpu = new CpuTemperatureSensor();
        var collector = new TelemetryCollector("site-7", cpu, null, new InferenceStatistics(), new ThermalGovernor(80, 5, 2));

        using JsonDocument document = JsonDocument.Parse(TelemetryCollector.ToJson(collector.Collect()));

        Assert.Equal(JsonValueKind.Null, document.RootElement.GetProperty("environment").ValueKind);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("site+")]
    [InlineData("#")]
    public void A_site_id_that_is_not_one_topic_level_is_rejected(string siteId)
    {
        using var cpu = new CpuTemperatureSensor();
        Assert.ThrowsAny<ArgumentException>(() => new TelemetryCollector(siteId, cpu, null, new InferenceStatistics(), new ThermalGovernor(80, 5, 2)));
    }

    /// <summary>A clock that moves only when told to.</summary>
    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        private TimeSpan _elapsed;

        public void Advance(TimeSpan by) => _elapsed += by;

        public override DateTimeOffset GetUtcNow() => start + _elapsed;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _elapsed.Ticks;
    }
}
