using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.EdgeModule.Telemetry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Service;

/// <summary>
/// Every <c>Telemetry:IntervalSeconds</c>: reads the CPU temperature and the optional environment sensor, publishes
/// them with the inference statistics on <c>edgeslm/&lt;siteId&gt;/telemetry</c>, and applies the thermal governor's
/// thread count to the encoder, so a hot board slows down instead of throttling hard.
/// </summary>
internal sealed class TelemetryService(ModuleSettings settings, ModuleCounters counters, IntentService module, ILogger<TelemetryService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        TelemetrySettings telemetry = settings.Telemetry;
        using var cpu = new CpuTemperatureSensor();
        EnvironmentSensor? environment = null;
        try
        {
            environment = EnvironmentSensor.Open(telemetry);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or PlatformNotSupportedException)
        {
            // A missing sensor costs the readings, not the module.
            logger.LogWarning("Environment sensor {Sensor} unavailable: {Reason}", telemetry.Sensor, e.Message);
        }
        using (environment)
        {
            var governor = new ThermalGovernor(telemetry.CpuTemperatureLimitC, telemetry.HysteresisC, settings.Threads);
            var collector = new TelemetryCollector(settings.SiteId, cpu, environment, counters.Inference, governor);
            try
            {
                await module.Connected.WaitAsync(stoppingToken);
                using var timer = new PeriodicTimer(TimeSpan.FromSeconds(telemetry.IntervalSeconds));
                do
                {
                    TelemetrySnapshot snapshot = collector.Collect();
                    int threads = governor.Threads;
                    if (threads != module.Runtime.Features.ActiveThreads)
                    {
                        logger.LogWarning("CPU at {Temperature:F1} °C (limit {Limit} °C): inference threads {From} -> {To}",
                            snapshot.CpuTemperature.TemperatureC, telemetry.CpuTemperatureLimitC, module.Runtime.Features.ActiveThreads, threads);
                        module.Runtime.Features.ActiveThreads = threads;
                    }
                    await module.PublishAsync(new OutgoingMessage(new ModuleTopics(settings.SiteId).Telemetry, TelemetryCollector.ToJson(snapshot).ToArray()), stoppingToken);
                }
                while (await timer.WaitForNextTickAsync(stoppingToken));
            }
            catch (OperationCanceledException)
            {
            }
        }
    }
}
