using System.Diagnostics;
using System.Net.Sockets;
using System.Net;

namespace EdgeSlm.EdgeModule.Tests.Support;

/// <summary>
/// A real mosquitto (Debian's package) on a free loopback port with a generated config. Persistence is on and
/// saved on every change, so a SIGKILL loses nothing the broker acknowledged, as on a device with a real broker.
/// </summary>
public sealed class Mosquitto : IDisposable
{
    private readonly string _directory;
    private readonly string _config;
    private Process? _process;

    private Mosquitto(string directory, int port, string config)
    {
        _directory = directory;
        Port = port;
        _config = config;
    }

    public int Port { get; }
    public string Url => $"mqtt://127.0.0.1:{Port}";

    public static string Executable =>
        new[] { "/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto" }.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("mosquitto is not installed (apt-get install mosquitto); .ci/run installs it");

    public static Mosquitto Start(string? extraConfig = null)
    {
        string directory = Path.Combine(Path.GetTempPath(), "edgeslm-mosquitto-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        // Started as root, mosquitto drops to its own user: it must still be able to write its database and log.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(directory, (UnixFileMode)0x1FF);
        }
        // FreePort can hand out again a port the caller took for a listener of its own in extraConfig.
        int port;
        do
        {
            port = FreePort();
        }
        while (extraConfig?.Contains($"listener {port} ", StringComparison.Ordinal) == true);
        string config = Path.Combine(directory, "mosquitto.conf");
        File.WriteAllText(config, $"""
            listener {port} 127.0.0.1
            allow_anonymous true
            persistence true
            persistence_location {directory}/
            autosave_on_changes true
            autosave_interval 1
            max_queued_messages 100000
            max_inflight_messages 100
            log_dest file {directory}/mosquitto.log
            {extraConfig ?? ""}
            """.Replace("            ", ""));
        var broker = new Mosquitto(directory, port, config);
        broker.Launch();
        return broker;
    }

    public void Launch()
    {
        _process = Process.Start(new ProcessStartInfo(Executable, ["-c", _config]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"mosquitto exited ({_process.ExitCode}): {_process.StandardError.ReadToEnd()} {Log()}");
            }
            try
            {
                using var probe = new TcpClient();
                probe.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(50);
            }
        }
        throw new TimeoutException($"mosquitto did not listen on {Port}: {Log()}");
    }

    /// <summary>SIGKILL: no goodbye to clients, no final save.</summary>
    public void Kill()
    {
        _process?.Kill();
        _process?.WaitForExit();
    }

    public void Restart()
    {
        Kill();
        Launch();
    }

    public string Log() => File.Exists(Path.Combine(_directory, "mosquitto.log")) ? File.ReadAllText(Path.Combine(_directory, "mosquitto.log")) : "";

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        Kill();
        _process?.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
