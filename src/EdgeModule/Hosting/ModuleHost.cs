using EdgeSlm.EdgeModule.Configuration;
using EdgeSlm.EdgeModule.Service;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Hosting;

/// <summary>
/// Builds the long-running module: settings from (later wins) the JSON file, <c>EDGESLM__*</c> environment
/// variables and the command line; console logs (JSON when not a terminal); systemd readiness and watchdog.
/// </summary>
public static class ModuleHost
{
    /// <summary>Flags of <c>edgeslm run</c> and the settings they set.</summary>
    public static readonly IReadOnlyDictionary<string, string> Flags = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["broker"] = "Mqtt:Broker",
        ["profile"] = "Profiles",
        ["intents"] = "Intents",
        ["model"] = "Model",
        ["site"] = "SiteId",
        ["threads"] = "Threads",
        ["encoder-threads"] = "EncoderThreads",
        ["threshold"] = "Threshold",
        ["cache"] = "CacheDirectory",
    };

    public const string EnvironmentPrefix = "EDGESLM__";

    /// <summary>Reads and validates the settings; throws <see cref="SettingsException"/> listing every problem.</summary>
    public static (ModuleSettings Settings, IConfiguration Configuration) LoadSettings(string? configFile, IReadOnlyDictionary<string, string?> commandLine)
    {
        var builder = new ConfigurationBuilder();
        if (configFile is not null)
        {
            if (!File.Exists(configFile))
            {
                throw new SettingsException($"--config: file {configFile} does not exist");
            }
            builder.AddJsonFile(Path.GetFullPath(configFile), optional: false, reloadOnChange: false);
        }
        builder.AddEnvironmentVariables(EnvironmentPrefix);
        builder.AddInMemoryCollection(commandLine);
        IConfigurationRoot configuration;
        try
        {
            configuration = builder.Build();
        }
        catch (Exception e) when (e is FormatException or InvalidDataException or IOException)
        {
            throw new SettingsException($"--config: {configFile} is not valid JSON ({e.InnerException?.Message ?? e.Message})");
        }
        var settings = new ModuleSettings();
        try
        {
            configuration.Bind(settings);
        }
        catch (InvalidOperationException e)
        {
            // The binder says which key and value failed to convert.
            throw new SettingsException(e.InnerException is null ? e.Message : $"{e.Message} {e.InnerException.Message}");
        }
        List<string> errors = settings.Validate();
        if (errors.Count > 0)
        {
            throw new SettingsException(string.Join(Environment.NewLine, errors));
        }
        return (settings, configuration);
    }

    public static IHost Build(ModuleSettings settings, IConfiguration configuration)
    {
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings
        {
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.AddConfiguration(configuration.GetSection("Logging"));
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.Warning);
        // A failed start is reported once, as one line, by the command; not as the host's stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);
        // Logs go to stderr so stdout stays for results (demo, classify); journald and Docker take both.
        if (Console.IsErrorRedirected)
        {
            builder.Logging.AddJsonConsole(o =>
            {
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                o.UseUtcTimestamp = true;
            });
        }
        else
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            });
        }
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Services.AddSystemd();
        builder.Services.TryAddSingleton<ISystemdNotifier, SystemdNotifier>();
        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton<ModuleCounters>();
        builder.Services.AddSingleton<IntentService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<IntentService>());
        builder.Services.AddHostedService<SystemdWatchdog>();
        builder.Services.AddHostedService<TelemetryService>();
        return builder.Build();
    }
}

/// <summary>
/// Pings systemd's watchdog (<c>WatchdogSec=</c>) at half its interval while the module's loops are alive, so a
/// hung module is restarted. Does nothing outside systemd.
/// </summary>
internal sealed class SystemdWatchdog(ISystemdNotifier notifier, IntentService module) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!notifier.IsEnabled || !long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), out long microseconds) || microseconds <= 0)
        {
            return;
        }
        using var timer = new PeriodicTimer(TimeSpan.FromMicroseconds(microseconds / 2.0));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (module.IsHealthy)
            {
                notifier.Notify(new ServiceState("WATCHDOG=1"));
            }
        }
    }
}
