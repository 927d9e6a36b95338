using System.Diagnostics;
using System.Text;
using EdgeSlm.EdgeModule.Hosting;
using EdgeSlm.EdgeModule.Service;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EdgeSlm.EdgeModule.Tests.Support;

/// <summary>The module in this process, as <c>edgeslm run</c> builds it, on the test's q4_0 model.</summary>
public sealed class InProcessModule : IAsyncDisposable
{
    private readonly IHost _host;

    private InProcessModule(IHost host)
    {
        _host = host;
        Service = host.Services.GetRequiredService<IntentService>();
        Counters = host.Services.GetRequiredService<ModuleCounters>();
    }

    public IntentService Service { get; }

    public ModuleCounters Counters { get; }

    public static async Task<InProcessModule> StartAsync(ConvertedModels models, string broker, IDictionary<string, string?>? settings = null, bool waitForConnection = true)
    {
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Model"] = models.Path(BundledModel.MiniLM, QuantType.Q4_0),
            ["Mqtt:Broker"] = broker,
            ["Mqtt:EmbeddedPort"] = "0",
            ["Mqtt:ClientId"] = "edgeslm-test-" + Guid.NewGuid().ToString("N")[..8],
            ["Threads"] = "1",
            ["CacheDirectory"] = ModuleProcess.CacheDirectory,
        };
        foreach ((string key, string? value) in settings ?? new Dictionary<string, string?>())
        {
            values[key] = value;
        }
        (ModuleSettings parsed, IConfiguration configuration) = ModuleHost.LoadSettings(null, values);
        IHost host = ModuleHost.Build(parsed, configuration);
        await host.StartAsync();
        var module = new InProcessModule(host);
        if (waitForConnection)
        {
            await module.Service.Connected.WaitAsync(TimeSpan.FromSeconds(30));
        }
        return module;
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        if (_host is IAsyncDisposable disposable) await disposable.DisposeAsync();
        else _host.Dispose();
    }
}

/// <summary>The module as a child process (<c>edgeslm run</c> from the build output), to kill it for real.</summary>
public sealed class ModuleProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();

    public static string CacheDirectory { get; } = Path.Combine(Path.GetTempPath(), "edgeslm-test-cache");

    private ModuleProcess(Process process)
    {
        _process = process;
        process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        process.OutputDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
    }

    public string Log
    {
        get { lock (_log) return _log.ToString(); }
    }

    public bool HasExited => _process.HasExited;
    public int ProcessId => _process.Id;
    public int ExitCode => _process.ExitCode;

    public static ModuleProcess Start(params string[] args)
    {
        string executable = Path.Combine(AppContext.BaseDirectory, "edgeslm");
        var start = new ProcessStartInfo(executable, args)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.Environment["EDGESLM_CACHE"] = CacheDirectory;
        return new ModuleProcess(Process.Start(start)!);
    }

    /// <summary>Runs to the end and returns (exit code, stdout+stderr).</summary>
    public static (int ExitCode, string Output) RunToEnd(TimeSpan timeout, params string[] args)
    {
        using ModuleProcess process = Start(args);
        if (!process._process.WaitForExit(timeout))
        {
            process.Kill();
            throw new TimeoutException($"edgeslm {string.Join(' ', args)} did not exit: {process.Log}");
        }
        process._process.WaitForExit();
        return (process.ExitCode, process.Log);
    }

    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
