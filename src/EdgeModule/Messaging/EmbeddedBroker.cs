using System.Net.Sockets;
using System.Net;
using MQTTnet.Server;

namespace EdgeSlm.EdgeModule.Messaging;

/// <summary>
/// An MQTT broker inside the module, for a device with none: MQTTnet's server on loopback and the LAN, with
/// persistent sessions (in memory), so clients of this device can talk to the module directly.
/// </summary>
public sealed class EmbeddedBroker : IAsyncDisposable
{
    private readonly MqttServer _server;

    private EmbeddedBroker(MqttServer server, int port)
    {
        _server = server;
        Port = port;
    }

    public int Port { get; }

    /// <param name="port">0 takes any free port.</param>
    public static async Task<EmbeddedBroker> StartAsync(int port, bool loopbackOnly = false)
    {
        if (port == 0)
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        var builder = new MqttServerOptionsBuilder()
            .WithDefaultEndpoint()
            .WithDefaultEndpointPort(port)
            .WithPersistentSessions(true)
            .WithMaxPendingMessagesPerClient(100_000);
        if (loopbackOnly)
        {
            builder = builder.WithDefaultEndpointBoundIPAddress(IPAddress.Loopback).WithDefaultEndpointBoundIPV6Address(IPAddress.None);
        }
        MqttServer server = new MqttServerFactory().CreateMqttServer(builder.Build());
        try
        {
            await server.StartAsync();
        }
        catch (SocketException e)
        {
            server.Dispose();
            throw new IOException($"the embedded broker cannot listen on port {port}: {e.Message}", e);
        }
        return new EmbeddedBroker(server, port);
    }

    public async ValueTask DisposeAsync()
    {
        await _server.StopAsync();
        _server.Dispose();
    }
}
