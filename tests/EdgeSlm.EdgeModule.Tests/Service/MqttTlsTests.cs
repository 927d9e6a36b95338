using System.Diagnostics;
using EdgeSlm.EdgeModule.Tests.Support;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Service;

/// <summary>
/// The module over TLS to a real mosquitto: a test CA, a server certificate for 127.0.0.1 and a client
/// certificate, all made here with openssl. The broker requires the client certificate (mutual TLS).
/// </summary>
public sealed class MqttTlsTests(ConvertedModels models)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Mutual_tls_with_a_private_ca_carries_transcripts_and_answers()
    {
        using var pki = TestPki.Create();
        int tlsPort = Mosquitto.FreePort();
        using var broker = Mosquitto.Start(pki.ListenerConfig(tlsPort));
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/tls/#");
        await using var module = await InProcessModule.StartAsync(models, $"mqtts://127.0.0.1:{tlsPort}", new Dictionary<string, string?>
        {
            ["SiteId"] = "tls",
            ["Mqtt:CaFile"] = pki.CaCertificate,
            ["Mqtt:ClientCertificateFile"] = pki.ClientCertificate,
            ["Mqtt:ClientKeyFile"] = pki.ClientKey,
        });
        await client.PublishAsync("edgeslm/tls/transcript", """{"text":"turn on the kitchen lights","id":"t1"}""");
        Received answer = await client.WaitForAsync(m => m.Topic == "edgeslm/tls/intent", Wait, "answer over TLS");
        Assert.Equal("HassTurnOn", answer.Json.GetProperty("intent").GetString());
        Assert.Contains("New client connected", broker.Log());
    }

    [Fact]
    public async Task Without_the_ca_the_broker_certificate_is_rejected_and_nothing_falls_back_to_plaintext()
    {
        using var pki = TestPki.Create();
        int tlsPort = Mosquitto.FreePort();
        using var broker = Mosquitto.Start(pki.ListenerConfig(tlsPort));
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/untrusted/#");
        // No CaFile: the system trust store does not know the test CA, so validation fails and the module keeps
        // retrying over TLS; it never says it is online.
        await using var module = await InProcessModule.StartAsync(models, $"mqtts://127.0.0.1:{tlsPort}", new Dictionary<string, string?> { ["SiteId"] = "untrusted" }, waitForConnection: false);
        await Task.Delay(TimeSpan.FromSeconds(4), TestContext.Current.CancellationToken);
        Assert.DoesNotContain(client.Messages, m => m.Topic == "edgeslm/untrusted/status" && m.Payload == "online");
        Assert.False(module.Service.Connected.IsCompleted);
        Assert.DoesNotContain("New client connected from 127.0.0.1", broker.Log().Split('\n').Where(l => l.Contains($"port {tlsPort}")));
    }
}

/// <summary>A throwaway PKI made with openssl: CA, server certificate (SAN 127.0.0.1, localhost), client certificate.</summary>
internal sealed class TestPki : IDisposable
{
    private readonly string _directory;

    private TestPki(string directory) => _directory = directory;

    public string CaCertificate => Path.Combine(_directory, "ca.pem");
    public string ServerCertificate => Path.Combine(_directory, "server.pem");
    public string ServerKey => Path.Combine(_directory, "server.key");
    public string ClientCertificate => Path.Combine(_directory, "client.pem");
    public string ClientKey => Path.Combine(_directory, "client.key");

    public static TestPki Create()
    {
        string directory = Path.Combine(Path.GetTempPath(), "edgeslm-pki-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        var pki = new TestPki(directory);
        File.WriteAllText(Path.Combine(directory, "server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
        File.WriteAllText(Path.Combine(directory, "client.ext"), "extendedKeyUsage=clientAuth\n");
        OpenSsl(directory, "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=EdgeSlm-Test-CA");
        OpenSsl(directory, "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
        OpenSsl(directory, "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext");
        OpenSsl(directory, "req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=edgeslm-test-device");
        OpenSsl(directory, "x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext");
        if (!OperatingSystem.IsWindows())
        {
            // mosquitto reads them as its own user.
            File.SetUnixFileMode(directory, (UnixFileMode)0x1ED);
            foreach (string file in Directory.GetFiles(directory)) File.SetUnixFileMode(file, (UnixFileMode)0x1A4);
        }
        return pki;
    }

    public string ListenerConfig(int port) => $"""
        listener {port} 127.0.0.1
        cafile {CaCertificate}
        certfile {ServerCertificate}
        keyfile {ServerKey}
        require_certificate true
        """;

    private static void OpenSsl(string directory, string arguments)
    {
        using Process process = Prerequisites.Start(new ProcessStartInfo("openssl", arguments.Split(' '))
        {
            WorkingDirectory = directory,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        })!;
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"openssl {arguments}: {error}");
    }

    public void Dispose()
    {
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
