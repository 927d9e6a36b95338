using System.Text.Json;
using EdgeSlm.EdgeModule.Telemetry;

namespace EdgeSlm.EdgeModule.Tests.Telemetry;

public sealed class ThermalGovernorTests
{
    [Fact]
    public void Governor_steps_down_one_thread_per_hot_reading_and_never_below_one()
    {
        var governor = new ThermalGovernor(limitC: 80, hysteresisC: 5, maxThreads: 4);

        Assert.Equal(4, governor.Threads);
        Assert.Equal(3, governor.Observe(81));
        Assert.Equal(2, governor.Observe(90));
        Assert.Equal(1, governor.Observe(85));
        Assert.Equal(1, governor.Observe(99));
        Assert.Equal(1, governor.Threads);
    }

    [Fact]
    public void Governor_gives_threads_back_only_below_the_limit_minus_the_hysteresis()
    {
        var governor = new ThermalGovernor(limitC: 80, hysteresisC: 5, maxThreads: 4);
        governor.Observe(85);
        governor.Observe(85);
        Assert.Equal(2, governor.Threads);

        // Inside the band [75, 80] nothing changes, the edges included.
        Assert.Equal(2, governor.Observe(80));
        Assert.Equal(2, governor.Observe(77));
        Assert.Equal(2, governor.Observe(75));

        Assert.Equal(3, governor.Observe(74.9));
        Assert.Equal(4, governor.Observe(60));
        Assert.Equal(4, governor.Observe(40));
        Assert.Equal(4, governor.Threads);

        Assert.Equal(3, governor.Observe(80.5));
    }

    [Fact]
    public void Governor_rejects_settings_and_readings_it_cannot_use()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ThermalGovernor(80, 5, maxThreads: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ThermalGovernor(80, hysteresisC: 0, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ThermalGovernor(double.NaN, 5, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ThermalGovernor(80, 5, 4).Observe(double.NaN));
    }
}
